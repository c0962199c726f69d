"""Issue 13, the gateway's items: userId claims (1), md5 replays (2), deep payloads (12).

Real `sioctl start --sticky` clusters of tests/apps/gwapp with 2 workers and the shared
redis-server, python-socketio clients from source addresses the master serves from a chosen
worker, plain HTTP for ``POST /api/transportMessage``.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from clients import bound_session
from test_gateway import (
    APP_DIR,
    HTTP_PATH,
    SIG_APP,
    SIG_KEY,
    SLOT0,
    SLOT1,
    TIMEOUT,
    WORKERS,
    GwClient,
    assert_deny,
    assert_success,
    http_body,
)

from sioctl.worker.gateway.protocol import (
    DENY,
    EXCHANGE,
    REQUEST_MESSAGE,
    SEND_TO_OTHERS,
    signed_request,
)
from sioctl.worker.protocol.nesting import MAX_DEPTH

ENV = {"GWAPP_CENTRAL_KEY": "central-hardening-key"}
# 900 nested arrays: 1.8 KB, the payload of the issue.
DEEP = 900


@pytest.fixture
def gw(start_cluster: Callable[..., Any]) -> Callable[..., Any]:
    """``gw(env="prod", workers=2)``: a cluster serving tests/apps/gwapp."""

    def start(env: str = "prod", workers: int = WORKERS, **kwargs: Any) -> Any:
        return start_cluster(app=str(APP_DIR), workers=workers,
                             extra_args=["--env", env], env=ENV, **kwargs)

    return start


@pytest.fixture
def client() -> Iterator[Callable[..., GwClient]]:
    """``client(source_ip)``: an unconnected GwClient, shut down after the test."""
    made: list[GwClient] = []

    def make(source_ip: str) -> GwClient:
        made.append(GwClient(source_ip))
        return made[-1]

    yield make
    for c in made:
        c.sio.shutdown()


def new_log(cluster: Any, mark: int) -> list[str]:
    """The cluster's log lines written since ``mark`` (a length of cluster.log_text())."""
    return cluster.log_text()[mark:].splitlines()


def post(session: requests.Session, cluster: Any, body: Any) -> requests.Response:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return session.post(cluster.url + HTTP_PATH, data=data, timeout=TIMEOUT,
                        headers={"Content-Type": "application/json"})


# ------------------------------------------------------------------- 12: deep nesting


def deep_event_text(event: str, envelope: Any, depth: int = DEEP) -> str:
    """The JSON arguments of an event whose "DEEP" string is replaced by ``depth`` nested
    arrays, built as text (a client library would recurse over it while encoding)."""
    text = json.dumps([event, envelope])
    assert text.count('"DEEP"') == 1
    return text.replace('"DEEP"', "[" * depth + "]" * depth)


def send_raw_event(c: GwClient, text: str) -> queue.Queue[Any]:
    """Send ``text`` (the JSON arguments) as a Socket.IO EVENT with an ack id, as is; returns
    the queue the acknowledgement arrives in."""
    acks: queue.Queue[Any] = queue.Queue()
    ack_id = c.sio._generate_ack_id("/", lambda *args: acks.put(args))
    c.sio.eio.send(f"2{ack_id}{text}")
    return acks


def test_deep_request_message_is_denied_in_one_line(gw: Any, client: Any) -> None:
    cluster = gw()
    attacker = client(SLOT0[0])
    attacker.connect(cluster.url)
    bystander = client(SLOT0[1])  # the same worker
    bystander.connect(cluster.url)
    target = client(SLOT1[0])
    target.connect(cluster.url)

    envelope = signed_request(SEND_TO_OTHERS, SIG_APP, SIG_KEY, payload="DEEP",
                              target=target.user_id, client=attacker.sid)
    text = deep_event_text(REQUEST_MESSAGE, envelope)
    assert 1800 < len(text) < 2400
    mark = len(cluster.log_text())
    acks = send_raw_event(attacker, text)

    # The sender gets a deny, as the ack and as a responseMessage; the target gets nothing.
    (ack,) = acks.get(timeout=TIMEOUT)
    reason = f"payload nested deeper than {MAX_DEPTH} levels"
    assert_deny(ack, reason, ["data.payload"])
    assert_deny(attacker.expect(DENY), reason)
    # The worker keeps serving the others.
    assert_success(bystander.request(SEND_TO_OTHERS, target=target.user_id, payload="still"),
                   target.user_id)
    assert target.expect(EXCHANGE)["data"]["payload"] == "still"
    target.assert_quiet()
    lines = new_log(cluster, mark)
    assert not any("Traceback" in line or "RecursionError" in line for line in lines), lines
    assert [line for line in lines if "nested deeper" in line] == [
        line for line in lines if "denied a request" in line]
    assert len([line for line in lines if "nested deeper" in line]) == 1, lines


def test_deep_other_event_closes_the_session_in_one_line(gw: Any, client: Any) -> None:
    cluster = gw()
    attacker = client(SLOT0[0])
    attacker.connect(cluster.url)
    bystander = client(SLOT0[1])
    bystander.connect(cluster.url)
    mark = len(cluster.log_text())
    send_raw_event(attacker, deep_event_text("whoami", "DEEP"))
    attacker.wait_disconnected()
    assert bystander.sio.call("whoami", timeout=TIMEOUT)["sid"] == bystander.sid
    lines = new_log(cluster, mark)
    assert not any("Traceback" in line or "RecursionError" in line for line in lines), lines
    closing = [line for line in lines if "nested deeper" in line]
    assert len(closing) == 1 and f"deeper than {MAX_DEPTH} levels" in closing[0], lines


def test_deep_http_message_is_refused_in_one_line(gw: Any, client: Any) -> None:
    cluster = gw()
    target = client(SLOT1[0])
    target.connect(cluster.url)
    session = bound_session(SLOT0[0])
    text = json.dumps(http_body(target.user_id, "DEEP"))
    mark = len(cluster.log_text())
    reply = post(session, cluster, text.replace('"DEEP"', "[" * DEEP + "]" * DEEP))
    assert reply.status_code == 422, reply.text
    assert reply.json()["fields"] == ["message"]
    assert reply.json()["message"] == f"message nested deeper than {MAX_DEPTH} levels"
    # Just within the limit is delivered; the worker serves on.
    nested = json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    reply = post(session, cluster, http_body(target.user_id, nested))
    assert reply.status_code == 200, reply.text
    assert target.expect(EXCHANGE)["data"]["payload"] == nested
    lines = new_log(cluster, mark)
    assert not any("Traceback" in line or "RecursionError" in line for line in lines), lines
    assert len([line for line in lines if "nested deeper" in line]) == 1, lines
