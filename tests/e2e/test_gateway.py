"""The signed message gateway end to end, through `sioctl start --sticky` with 2 workers.

The app is tests/apps/gwapp (signatureApp: md5, centralServiceApp: md5 with its key from the
environment, hmacApp: hmac-sha256). Python clients come from source addresses the master serves
from a chosen worker (ips_for_slot); the official JS socket.io-client runs tests/js/client.js.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import signal
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import socketio

from sioctl.worker.gateway.wire import (
    BROADCAST,
    CONNECT,
    DENY,
    DISCONNECT,
    EXCHANGE,
    RE_CONNECT_AND_UPDATES,
    RE_CONNECT_UPDATED,
    REQUEST_ID,
    REQUEST_MESSAGE,
    RESPONSE_MESSAGE,
    SAVE_ID,
    SEND_TO_OTHERS,
    now_ms,
    sign,
    sign_hmac,
    signed_request,
)
from tests.support.clients import bound_session, ips_for_slot, make_client, wait_until
from tests.support.cluster import ENGINES
from tests.support.gateway import (
    APP_DIR,
    CENTRAL_KEY,
    HTTP_PATH,
    SIG_APP,
    SIG_KEY,
    SLOT0,
    SLOT1,
    TIMEOUT,
    WORKERS,
    action_of,
    assert_deny,
    assert_success,
    http_body,
    signed_auth,
)
from tests.support.node import NodeClient
from tests.support.paths import JS_DIR

# Every test runs on both engines: gwapp loads on either shell.
pytestmark = pytest.mark.parametrize("engine", ENGINES)

CENTRAL_APP = "centralServiceApp"
HMAC_APP, HMAC_KEY = "hmacApp", "hmac-app-key"
WINDOW_MS = 300_000

# The HTTP caller: an address no socket client uses, served by worker 0.
HTTP_IP = ips_for_slot(0, WORKERS, [f"127.0.0.{i}" for i in range(20, 40)])[0]


def envelope_at(
    action: str, timestamp: int, app: str = SIG_APP, key: str = SIG_KEY, **meta: Any
) -> dict[str, Any]:
    """An md5-signed envelope with a chosen timestamp."""
    return {
        "meta": {"timestamp": timestamp, "app": app, "sign": sign(app, key, timestamp), **meta},
        "data": {"action": action, "payload": None},
    }


@pytest.fixture
def gateway(start_cluster: Callable[..., Any], engine: str) -> Callable[..., Any]:
    """``gateway(env="prod", allow_eio3=False)``: 2 sticky workers of ``engine`` serving
    tests/apps/gwapp."""

    def start(env: str = "prod", allow_eio3: bool = False) -> Any:
        cluster = start_cluster(
            app=str(APP_DIR), workers=WORKERS,
            extra_args=["--env", env, *(["--allow-eio3"] if allow_eio3 else [])],
            env={"GWAPP_CENTRAL_KEY": CENTRAL_KEY},
        )
        assert f"starting {WORKERS} {engine} workers" in cluster.log_text()
        return cluster

    return start


@pytest.fixture
def node() -> Iterator[Callable[[dict[str, Any]], NodeClient]]:
    """``node(spec)``: tests/js/client.js running with ``spec``, killed after the test."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    assert (JS_DIR / "node_modules" / "socket.io-client").is_dir(), (
        "socket.io-client is not installed: run `npm ci --prefix tests/js`"
    )
    made: list[NodeClient] = []

    def run(spec: dict[str, Any]) -> NodeClient:
        made.append(NodeClient({"timeout": 15000, **spec}))
        return made[-1]

    yield run
    for n in made:
        n.close()


# ------------------------------------------------------------------------------ saveId


def test_save_id_on_connect_and_request_id(
    gateway: Any, client: Any, node: Any
) -> None:
    cluster = gateway()
    a = client(SLOT0[0])
    hello = a.connect(cluster.url)
    assert hello["data"]["payload"] == {"socketId": a.sio.get_sid("/"), "userId": a.user_id}
    assert str(uuid.UUID(a.user_id)) == a.user_id
    assert hello["meta"]["client"] == a.sid and isinstance(hello["meta"]["timestamp"], int)
    assert hello["meta"]["target"] == a.sid  # every reply carries meta.target (the seed)

    # requestId answers saveId again: as the ack and as a responseMessage.
    again = a.request(REQUEST_ID)
    assert action_of(again) == SAVE_ID
    assert again["data"]["payload"] == {"socketId": a.sid, "userId": a.user_id}
    assert again["meta"]["app"] == SIG_APP

    # A valid uuid in a signed handshake's auth is kept (a userId nobody holds); anything else,
    # or an unsigned claim (test_hardening_gateway), is replaced by a fresh one.
    kept = str(uuid.uuid4())
    b = client(SLOT1[0])
    assert b.connect(cluster.url, auth=signed_auth(userId=kept))[
        "data"]["payload"]["userId"] == kept
    c = client(SLOT1[1])
    c.connect(cluster.url, auth=signed_auth(userId="not-a-uuid"))
    assert c.user_id not in ("not-a-uuid", kept, a.user_id)
    uuid.UUID(c.user_id)
    for each in (a, b, c):
        each.assert_quiet()

    # The JS client: saveId on connect, requestId answered (the handshake userId kept).
    js_user = str(uuid.uuid4())
    js = node({
        "url": cluster.url, "localAddress": SLOT1[2], "auth": signed_auth(userId=js_user),
        "actions": [
            {"op": "wait", "event": RESPONSE_MESSAGE},
            {"op": "emit", "event": REQUEST_MESSAGE,
             "args": [signed_request(REQUEST_ID, SIG_APP, SIG_KEY)]},
            {"op": "wait", "event": RESPONSE_MESSAGE},
        ],
    })
    js_id = js.expect("connect")["id"]
    [saved] = js.expect("wait")["args"]
    assert saved["data"] == {"action": SAVE_ID,
                             "payload": {"socketId": js_id, "userId": js_user}}
    ack = js.expect("emit")["ack"]
    assert ack["data"] == saved["data"]
    assert js.expect("wait")["args"] == [ack]
    js.expect("done")


# ------------------------------------------------------------------------ sendToOthers


def test_send_to_others_across_workers(gateway: Any, client: Any) -> None:
    cluster = gateway()
    sender = client(SLOT0[0])
    sender.connect(cluster.url)
    target = client(SLOT1[0])
    target.connect(cluster.url)
    cluster.wait_for(
        lambda s: all(slot["sessions"] >= 1 for slot in s["slots"]), what="a client per worker"
    )

    for n, address in enumerate((target.sid, target.user_id)):
        payload = {"n": n, "text": "héllo", "list": [1, None, True]}
        ack = sender.request(SEND_TO_OTHERS, target=address, payload=payload)
        assert_success(ack, address)
        got = target.expect(EXCHANGE)
        assert got["data"]["payload"] == payload
        assert got["meta"]["client"] == sender.sid
        assert got["meta"]["userId"] == sender.user_id
        assert got["meta"]["app"] == SIG_APP
        assert got["meta"]["target"] == address

    # The other way round, by userId.
    assert_success(target.request(SEND_TO_OTHERS, target=sender.user_id, payload="back"),
                   sender.user_id)
    assert sender.expect(EXCHANGE)["data"]["payload"] == "back"

    # An offline target: a deny naming it; the sender stays connected and keeps being served.
    gone = str(uuid.uuid4())
    deny = sender.request(SEND_TO_OTHERS, target=gone, payload=1)
    assert_deny(deny, f"target {gone!r} is not online")
    assert gone in deny["data"]["payload"]["reason"]
    assert sender.sio.connected
    assert_success(sender.request(SEND_TO_OTHERS, target=target.sid, payload=2), target.sid)
    assert target.expect(EXCHANGE)["data"]["payload"] == 2
    sender.assert_quiet()
    target.assert_quiet()
    assert sender.sio.connected and target.sio.connected


def test_send_to_others_with_the_js_client(gateway: Any, client: Any, node: Any) -> None:
    cluster = gateway()
    python = client(SLOT0[0])
    python.connect(cluster.url)
    from_js = {"from": "js", "n": [1, 2, 3]}
    # The JS client (on the other worker) sends to the python client's userId, then waits for
    # the python client's answer sent to its client id.
    js = node({
        "url": cluster.url, "localAddress": SLOT1[0],
        "actions": [
            {"op": "wait", "event": RESPONSE_MESSAGE},
            {"op": "emit", "event": REQUEST_MESSAGE,
             "args": [signed_request(SEND_TO_OTHERS, SIG_APP, SIG_KEY, payload=from_js,
                                     target=python.user_id)]},
            {"op": "ready"},
            {"op": "wait", "event": RESPONSE_MESSAGE},
        ],
    })
    js_id = js.expect("connect")["id"]
    [saved] = js.expect("wait")["args"]
    js_user = saved["data"]["payload"]["userId"]
    assert saved["data"]["payload"]["socketId"] == js_id
    assert_success(js.expect("emit")["ack"], python.user_id)
    got = python.expect(EXCHANGE)
    assert got["data"]["payload"] == from_js
    assert (got["meta"]["client"], got["meta"]["userId"]) == (js_id, js_user)

    js.expect("ready")
    assert_success(python.request(SEND_TO_OTHERS, target=js_id, payload="to js"), js_id)
    [exchange] = js.expect("wait")["args"]
    assert exchange["data"] == {"action": EXCHANGE, "payload": "to js"}
    assert (exchange["meta"]["client"], exchange["meta"]["userId"]) == (
        python.sid, python.user_id)
    assert exchange["meta"]["target"] == js_id
    js.expect("done")
    # The JS client leaves once done: python, its exchange peer, hears disconnect.
    gone = python.expect(DISCONNECT)
    assert gone["data"]["payload"] == {"socketId": js_id, "userId": js_user}
    python.assert_quiet()


# ----------------------------------------------------------------------------- reconnect


def test_reconnect_flow(gateway: Any, client: Any) -> None:
    cluster = gateway()
    sender = client(SLOT0[0])
    sender.connect(cluster.url)
    first = client(SLOT0[1])
    first.connect(cluster.url)
    old_user = first.user_id
    assert_success(sender.request(SEND_TO_OTHERS, target=old_user, payload="before"), old_user)
    assert first.expect(EXCHANGE)["data"]["payload"] == "before"

    first.sio.disconnect()

    def offline() -> bool:
        ack = sender.request(SEND_TO_OTHERS, target=old_user, payload="while away")
        return action_of(ack) == DENY

    wait_until(offline, TIMEOUT, interval=0.1, what="the old socket to leave the registry")

    # The new socket (on the other worker) gets a fresh userId, then takes over the old one.
    second = client(SLOT1[0])
    second.connect(cluster.url)
    fresh_user = second.user_id
    assert fresh_user != old_user
    updated = second.request(RE_CONNECT_AND_UPDATES, user_id=old_user)
    assert action_of(updated) == RE_CONNECT_UPDATED
    assert updated["data"]["payload"] == {"socketId": second.sid, "userId": old_user}
    assert updated["meta"]["userId"] == old_user

    assert_success(sender.request(SEND_TO_OTHERS, target=old_user, payload="after"), old_user)
    got = second.expect(EXCHANGE)
    assert got["data"]["payload"] == "after"
    assert got["meta"]["client"] == sender.sid
    # requestId now reports the userId taken over; the fresh one no longer reaches anybody.
    assert second.request(REQUEST_ID)["data"]["payload"] == {
        "socketId": second.sid, "userId": old_user}
    assert_deny(sender.request(SEND_TO_OTHERS, target=fresh_user, payload="x"),
                f"target {fresh_user!r} is not online")
    assert sender.sio.connected and second.sio.connected
    second.assert_quiet()

    # A reconnect presenting the userId in a signed handshake works as well (worker 0 now).
    second.sio.disconnect()
    third = client(SLOT0[2])
    wait_until(lambda: action_of(sender.request(SEND_TO_OTHERS, target=old_user, payload=0))
               == DENY, TIMEOUT, interval=0.1, what="the second socket to leave")
    third.connect(cluster.url, auth=signed_auth(userId=old_user))
    assert third.user_id == old_user
    assert_success(sender.request(SEND_TO_OTHERS, target=old_user, payload="third"), old_user)
    assert third.expect(EXCHANGE)["data"]["payload"] == "third"


# ----------------------------------------------------------------------------- broadcast


def test_broadcast_reaches_every_socket_of_the_namespace_but_other_apps(
    gateway: Any, client: Any, node: Any
) -> None:
    """A per-app broadcast reaches every socket of the gateway's namespace (the seed's
    reading), except the sender and the sockets bound to another app."""
    cluster = gateway()
    sender = client(SLOT0[0])
    same_worker = client(SLOT0[1])
    other_worker = client(SLOT1[0])
    other_app = client(SLOT1[1])
    no_app = client(SLOT0[2])
    for c in (sender, same_worker, other_worker, other_app, no_app):
        c.connect(cluster.url)
    # A socket joins its app with its first signed request (or a signed handshake, below).
    for c in (sender, same_worker, other_worker):
        assert action_of(c.request(REQUEST_ID)) == SAVE_ID
    assert action_of(other_app.request(REQUEST_ID, app=CENTRAL_APP, key=CENTRAL_KEY)) == SAVE_ID

    ts = now_ms()
    js = node({
        "url": cluster.url, "localAddress": SLOT1[2],
        "auth": {"app": SIG_APP, "timestamp": ts, "sign": sign(SIG_APP, SIG_KEY, ts)},
        "actions": [
            {"op": "wait", "event": RESPONSE_MESSAGE},
            {"op": "ready"},
            {"op": "wait", "event": RESPONSE_MESSAGE},
        ],
    })
    js.expect("connect")
    js.expect("wait")
    js.expect("ready")

    payload = {"news": secrets.token_hex(4)}
    assert_success(sender.request(BROADCAST, payload=payload))
    # no_app has sent nothing signed: it is a socket of the namespace all the same.
    for receiver in (same_worker, other_worker, no_app):
        got = receiver.expect(BROADCAST)
        assert got["data"]["payload"] == payload
        assert (got["meta"]["client"], got["meta"]["userId"], got["meta"]["app"]) == (
            sender.sid, sender.user_id, SIG_APP)
    [js_got] = js.expect("wait")["args"]
    assert js_got["data"] == {"action": BROADCAST, "payload": payload}
    js.expect("done")
    for c in (sender, same_worker, other_worker, other_app, no_app):
        c.assert_quiet()

    # The other app's broadcast reaches no signatureApp socket, and the unbound one.
    assert_success(other_app.request(BROADCAST, app=CENTRAL_APP, key=CENTRAL_KEY, payload=7))
    assert no_app.expect(BROADCAST)["data"]["payload"] == 7
    # Once bound to an app, a socket hears only that app's broadcasts.
    assert action_of(no_app.request(REQUEST_ID)) == SAVE_ID
    assert_success(other_app.request(BROADCAST, app=CENTRAL_APP, key=CENTRAL_KEY, payload=8))
    assert_success(sender.request(BROADCAST, payload=9))
    for receiver in (same_worker, other_worker, no_app):
        assert receiver.expect(BROADCAST)["data"]["payload"] == 9
    for c in (sender, same_worker, other_worker, other_app, no_app):
        c.assert_quiet()


def notice(receiver: Any, action: str, sid: str, user_id: str) -> None:
    """``receiver`` hears the connect or disconnect notice of socket ``sid`` of ``user_id``."""
    got = receiver.expect(action)
    assert got["data"]["payload"] == {"socketId": sid, "userId": user_id}, got
    assert (got["meta"]["client"], got["meta"]["userId"]) == (sid, user_id)
    assert got["meta"]["target"] is None


def test_peers_hear_connect_and_disconnect(gateway: Any, client: Any) -> None:
    """The seed's CONNECT / DISCONNECT: a socket's exchange peers hear when it goes away, and
    those that sent to its userId hear when that userId is back (a proven claim)."""
    cluster = gateway()
    a, b, c, quiet = (client(ip) for ip in (SLOT0[0], SLOT1[0], SLOT1[1], SLOT0[1]))
    for each in (a, b, c, quiet):
        each.connect(cluster.url)
    # a sends to b by userId (across workers), c sends to a by socket id.
    assert_success(a.request(SEND_TO_OTHERS, target=b.user_id, payload=1), b.user_id)
    assert b.expect(EXCHANGE)["data"]["payload"] == 1
    assert_success(c.request(SEND_TO_OTHERS, target=a.sid, payload=2), a.sid)
    assert a.expect(EXCHANGE)["data"]["payload"] == 2

    b_user, b_sid = b.user_id, b.sid
    b.sio.disconnect()
    notice(a, DISCONNECT, b_sid, b_user)

    # b's userId back through a signed handshake: a, which sent to it, hears connect.
    b2 = client(SLOT0[2])
    b2.connect(cluster.url, auth=signed_auth(userId=b_user))
    assert b2.user_id == b_user
    notice(a, CONNECT, b2.sid, b_user)
    b2.sio.disconnect()
    notice(a, DISCONNECT, b2.sid, b_user)

    # ... and through reconnectAndUpdates, from a fresh socket on the other worker.
    b3 = client(SLOT1[2])
    b3.connect(cluster.url)
    wait_until(lambda: action_of(b3.request(RE_CONNECT_AND_UPDATES, user_id=b_user))
               == RE_CONNECT_UPDATED, TIMEOUT, interval=0.1, what="b's userId to be free")
    notice(a, CONNECT, b3.sid, b_user)

    # The receiver's side: c sent to a; c leaves and its userId comes back (a signed
    # handshake): a hears both, the connect from the exchange peers recorded in the registry.
    c_sid, c_user = c.sid, c.user_id
    c.sio.disconnect()
    notice(a, DISCONNECT, c_sid, c_user)
    c = client(SLOT1[3])
    c.connect(cluster.url, auth=signed_auth(userId=c_user))
    assert c.user_id == c_user
    notice(a, CONNECT, c.sid, c_user)
    assert_success(c.request(SEND_TO_OTHERS, target=a.sid, payload=3), a.sid)
    assert a.expect(EXCHANGE)["data"]["payload"] == 3

    # a goes: c, which sent to a, hears it; so does b3? No: a sent to b's userId, whose socket
    # was b (gone), and b3 never exchanged with a.
    a_sid, a_user = a.sid, a.user_id
    a.sio.disconnect()
    notice(c, DISCONNECT, a_sid, a_user)
    for each in (b3, c, quiet):
        each.assert_quiet()


@pytest.mark.parametrize("leaver", ["v2", "v4"])
def test_js_clients_of_both_protocols_in_the_flows(
    gateway: Any, js_client: Any, leaver: str
) -> None:
    """socket.io-client@2 and @4 (node) in the gateway's flows, side by side on the two
    workers: signed requestMessage / responseMessage both ways, a form POST reaching each by
    the socket.id its page sees, and each hearing the other leave (disconnect) and, for the
    one that comes back, return (connect). ``leaver``: the protocol of the client that leaves
    first and comes back."""
    stayer = "v4" if leaver == "v2" else "v2"
    cluster = gateway(allow_eio3=True)
    a, b = js_client(SLOT0[0], stayer), js_client(SLOT1[0], leaver)
    a.connect(cluster.url)
    b.connect(cluster.url)
    assert (a.sid, b.sid) == (a.socket_id, b.socket_id)  # the v2 page's socket.id included

    assert_success(a.request(SEND_TO_OTHERS, target=b.sid, payload={"from": stayer}), b.sid)
    got = b.expect(EXCHANGE)
    assert got["data"]["payload"] == {"from": stayer}
    assert (got["meta"]["client"], got["meta"]["userId"]) == (a.sid, a.user_id)
    assert_success(b.request(SEND_TO_OTHERS, target=a.user_id, payload={"from": leaver}),
                   a.user_id)
    assert a.expect(EXCHANGE)["data"]["payload"] == {"from": leaver}

    # An H5 page's form post, addressed by the socket.id the other page showed it.
    http = bound_session(HTTP_IP)
    for each in (a, b):
        reply = http.post(cluster.url + HTTP_PATH, data=http_body(each.socket_id, "by form"),
                          timeout=TIMEOUT)
        assert reply.status_code == 200, reply.text
        got = each.expect(EXCHANGE)
        assert (got["data"]["payload"], got["meta"]["target"]) == ("by form", each.socket_id)

    b_sid, b_user = b.sid, b.user_id
    b.disconnect()
    notice(a, DISCONNECT, b_sid, b_user)
    # b's userId back on a new socket of the same client (reconnectAndUpdates), on the other
    # worker: a, which sent to it, hears connect.
    b2 = js_client(SLOT0[1], leaver)
    b2.connect(cluster.url)
    wait_until(lambda: action_of(b2.request(RE_CONNECT_AND_UPDATES, user_id=b_user))
               == RE_CONNECT_UPDATED, TIMEOUT, interval=0.1, what="b's userId to be free")
    notice(a, CONNECT, b2.sid, b_user)

    # b2 sends to a; a leaves: b2 hears it.
    assert_success(b2.request(SEND_TO_OTHERS, target=a.sid, payload="last"), a.sid)
    assert a.expect(EXCHANGE)["data"]["payload"] == "last"
    a_sid, a_user = a.sid, a.user_id
    a.disconnect()
    notice(b2, DISCONNECT, a_sid, a_user)
    b2.assert_quiet()


def test_peers_hear_the_sockets_of_a_killed_worker_go(gateway: Any, client: Any) -> None:
    """A SIGKILLed worker runs no disconnect handler: a live worker notices it died (its pid
    is gone; on another node, its alive key expires), takes its sockets from the registry and
    tells their peers, whichever side sent, once each."""
    cluster = gateway()
    a, b = client(SLOT0[0]), client(SLOT0[1])  # on worker 0, which stays
    doomed = [client(SLOT1[0]), client(SLOT1[1])]  # on worker 1, which is killed
    for each in (a, b, *doomed):
        each.connect(cluster.url)
    # a sends to doomed[0] (by socket id); doomed[1] sends to b (by userId).
    assert_success(a.request(SEND_TO_OTHERS, target=doomed[0].sid, payload=1), doomed[0].sid)
    assert doomed[0].expect(EXCHANGE)["data"]["payload"] == 1
    assert_success(doomed[1].request(SEND_TO_OTHERS, target=b.user_id, payload=2), b.user_id)
    assert b.expect(EXCHANGE)["data"]["payload"] == 2

    before = cluster.worker_pids()
    os.kill(before[1], signal.SIGKILL)
    notice(a, DISCONNECT, doomed[0].sid, doomed[0].user_id)
    notice(b, DISCONNECT, doomed[1].sid, doomed[1].user_id)

    def replaced(status: dict[str, Any]) -> bool:
        slots = {int(slot["slot"]): slot for slot in status["slots"]}
        return slots[1].get("pid") not in (None, before[1]) and all(
            slot.get("state") == "ready" for slot in slots.values())

    cluster.wait_for(replaced, what="worker 1 to be replaced")
    # Told once (the sockets are taken by one worker), and offline for a sender.
    for each in (a, b):
        each.assert_quiet()
    assert_deny(a.request(SEND_TO_OTHERS, target=doomed[0].sid, payload=3),
                f"target {doomed[0].sid!r} is not online")
    assert "dead worker" in cluster.log_text()


def test_presence_off_sends_no_notices(gateway: Any, client: Any) -> None:
    """``gateway = {"presence": False}``: exchanges work, nobody hears anybody come or go."""
    cluster = gateway("quiet")
    a, b = client(SLOT0[0]), client(SLOT1[0])
    for each in (a, b):
        each.connect(cluster.url)
    assert_success(a.request(SEND_TO_OTHERS, target=b.sid, payload=1), b.sid)
    assert b.expect(EXCHANGE)["data"]["payload"] == 1
    assert_success(b.request(SEND_TO_OTHERS, target=a.user_id, payload=2), a.user_id)
    assert a.expect(EXCHANGE)["data"]["payload"] == 2
    b_user = b.user_id
    b.disconnect()
    b = client(SLOT1[1])
    b.connect(cluster.url, auth=signed_auth(userId=b_user))
    assert b.user_id == b_user
    a.assert_quiet()


# ---------------------------------------------------------------------------------- HTTP


def test_http_transport_message(gateway: Any, client: Any) -> None:
    cluster = gateway()
    target = client(SLOT1[0])
    target.connect(cluster.url)
    url = cluster.url + HTTP_PATH
    http = bound_session(HTTP_IP)

    def post(body: Any, **kwargs: Any) -> requests.Response:
        return http.post(url, json=body, timeout=TIMEOUT, **kwargs)

    for address in (target.sid, target.user_id):
        message = {"hello": "from http", "to": address}
        reply = post(http_body(address, message, user_id="web-page-1"))
        assert reply.status_code == 200
        assert reply.text and reply.json() == {
            "status": 200, "success": True, "message": "delivered"}
        got = target.expect(EXCHANGE)
        assert got["data"]["payload"] == message
        assert got["meta"]["userId"] == "web-page-1" and got["meta"]["target"] == address
        assert got["meta"]["app"] == SIG_APP

    # The key from the environment signs HTTP calls too.
    assert post(http_body(target.sid, 1, CENTRAL_APP, CENTRAL_KEY)).status_code == 200
    assert target.expect(EXCHANGE)["data"]["payload"] == 1

    def refused(reply: requests.Response, status: int) -> dict[str, Any]:
        assert reply.status_code == status, reply.text
        assert reply.headers["Content-Type"] == "application/json"
        body = reply.json()
        assert body["status"] == status and body["success"] is False, body
        assert isinstance(body["message"], str) and body["message"]
        return dict(body)

    body = refused(post({}), 422)
    assert sorted(body["fields"]) == ["app", "message", "sign", "target", "timestamp"]
    body = refused(post({"timestamp": "now", "app": 1, "target": "", "sign": None,
                         "message": None, "userId": 5}), 422)
    assert sorted(body["fields"]) == ["app", "sign", "target", "timestamp", "userId"]
    assert refused(post([1, 2]), 422)["fields"] == ["body"]
    for raw in (b"not json {", b"\xff\xfe", b""):
        body = refused(http.post(url, data=raw, timeout=TIMEOUT,
                                 headers={"Content-Type": "application/json"}), 422)
        assert body["fields"] == ["body"]

    good = http_body(target.sid, "x")
    assert refused(post({**good, "sign": "0" * 32}), 401)["message"] == "bad signature"
    assert refused(post({**good, "sign": "short"}), 401)["message"] == "bad signature"
    assert refused(post(http_body(target.sid, "x", key="wrong")), 401)["message"] == (
        "bad signature")
    window = "timestamp outside the allowed window (±300 s)"
    for offset in (-WINDOW_MS - 1000, WINDOW_MS + 1000):
        late = http_body(target.sid, "x", timestamp=now_ms() + offset)
        assert refused(post(late), 401)["message"] == window
    assert refused(post(http_body(target.sid, "x", app="nope")), 401)["message"] == (
        "unknown app 'nope'")
    gone = str(uuid.uuid4())
    assert gone in refused(post(http_body(gone, "x")), 404)["message"]

    big = http_body(target.sid, "y" * 5000)
    refused(post(big), 413)
    # A fresh connection for the next calls: the server may close the one it refused to read.
    http = bound_session(HTTP_IP)

    reply = http.get(url, timeout=TIMEOUT)
    assert reply.status_code == 405 and reply.json()["status"] == 405
    assert "POST" in reply.headers["Allow"]

    origin = "https://h5.example.com"
    reply = post(http_body(target.sid, "cors"), headers={"Origin": origin})
    assert reply.status_code == 200
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert target.expect(EXCHANGE)["data"]["payload"] == "cors"
    reply = http.options(url, timeout=TIMEOUT, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert reply.status_code == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert "content-type" in reply.headers["Access-Control-Allow-Headers"].lower()

    # None of the refusals reached the client, which is still served.
    target.assert_quiet()
    assert action_of(target.request(REQUEST_ID)) == SAVE_ID


def test_http_form_bodies_and_other_content_types(gateway: Any, client: Any) -> None:
    """koa's body parser, which the seed's server used, took forms as well as JSON: the same
    fields as form fields reach the target; other content types get 415."""
    cluster = gateway()
    target = client(SLOT1[0])
    target.connect(cluster.url)
    url = cluster.url + HTTP_PATH
    http = bound_session(HTTP_IP)

    # An HTML form / jQuery $.post: text fields, the timestamp as digits (requests encodes a
    # dict as application/x-www-form-urlencoded).
    body = http_body(target.sid, "plain text", user_id="form-page")
    reply = http.post(url, data=body, timeout=TIMEOUT)
    assert reply.status_code == 200, reply.text
    got = target.expect(EXCHANGE)
    assert got["data"]["payload"] == "plain text"
    assert got["meta"]["userId"] == "form-page" and got["meta"]["target"] == target.sid

    # jQuery's $.post(url, {message: {msg, tags: [...]}}) sends qs's bracket notation.
    form = [(k, str(v)) for k, v in http_body(target.user_id, None).items() if k != "message"]
    form += [("message[msg]", "hi"), ("message[tags][]", "a"), ("message[tags][]", "b")]
    reply = http.post(url, data=form, timeout=TIMEOUT,
                      headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"})
    assert reply.status_code == 200, reply.text
    assert target.expect(EXCHANGE)["data"]["payload"] == {"msg": "hi", "tags": ["a", "b"]}

    # curl -d '<json>' labels JSON as a form: read as JSON, as the endpoint always did.
    reply = http.post(url, data=json.dumps(http_body(target.sid, {"n": 1})), timeout=TIMEOUT,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 200, reply.text
    assert target.expect(EXCHANGE)["data"]["payload"] == {"n": 1}

    # A malformed form names its fields (422), a bad signature is a 401 as with JSON.
    reply = http.post(url, data={**http_body(target.sid, "x"), "timestamp": "soon"},
                      timeout=TIMEOUT)
    assert reply.status_code == 422 and reply.json()["fields"] == ["timestamp"]
    reply = http.post(url, data=[*form, ("message[msg]", "again")], timeout=TIMEOUT)
    assert reply.status_code == 422 and reply.json()["fields"] == ["message"]
    reply = http.post(url, data={**http_body(target.sid, "x"), "sign": "0" * 32},
                      timeout=TIMEOUT)
    assert reply.status_code == 401 and reply.json()["message"] == "bad signature"

    # Any other content type: 415, whatever the body holds.
    good = json.dumps(http_body(target.sid, "never"))
    for content_type in ("text/plain", "multipart/form-data; boundary=x", "application/xml"):
        reply = http.post(url, data=good, timeout=TIMEOUT,
                          headers={"Content-Type": content_type})
        assert reply.status_code == 415, (content_type, reply.text)
        assert reply.json() == {"status": 415, "success": False, "message": (
            "send application/json or application/x-www-form-urlencoded")}
    # application/*+json is JSON.
    reply = http.post(url, data=json.dumps(http_body(target.sid, "vnd")), timeout=TIMEOUT,
                      headers={"Content-Type": "application/vnd.api+json"})
    assert reply.status_code == 200, reply.text
    assert target.expect(EXCHANGE)["data"]["payload"] == "vnd"
    target.assert_quiet()


def test_http_hmac_app_signs_the_message_and_refuses_replays(
    gateway: Any, client: Any
) -> None:
    cluster = gateway()
    target = client(SLOT1[0])
    target.connect(cluster.url)
    url = cluster.url + HTTP_PATH
    http = bound_session(HTTP_IP)
    ts, nonce, message = now_ms(), secrets.token_hex(16), {"amount": 10}
    body = {"timestamp": ts, "app": HMAC_APP, "target": target.sid, "nonce": nonce,
            "sign": sign_hmac(HMAC_APP, HMAC_KEY, ts, nonce, message), "message": message}
    reply = http.post(url, json=body, timeout=TIMEOUT)
    assert reply.status_code == 200, reply.text
    assert target.expect(EXCHANGE)["data"]["payload"] == message

    altered = http.post(url, json={**body, "message": {"amount": 10_000},
                                   "nonce": secrets.token_hex(16)}, timeout=TIMEOUT)
    assert altered.status_code == 401 and altered.json()["message"] == "bad signature"
    # The same signed body again: the nonce was used, as on the socket.
    replayed = http.post(url, json=body, timeout=TIMEOUT)
    assert replayed.status_code == 401, (
        f"a replayed hmac-sha256 HTTP body was accepted: {replayed.status_code} {replayed.text}")
    assert "replayed nonce" in replayed.json()["message"]
    target.assert_quiet()


# ------------------------------------------------------------------------------ refusals


def test_every_socket_refusal_is_denied_and_disconnects(gateway: Any, client: Any) -> None:
    cluster = gateway("prod")
    # Bystanders on both workers, served before and after every refusal.
    left = client(SLOT0[0])
    left.connect(cluster.url)
    right = client(SLOT1[0])
    right.connect(cluster.url)

    now = now_ms()
    window = "timestamp outside the allowed window (±300 s)"
    missing = ["meta.timestamp", "meta.app", "meta.sign", "data.action"]
    cases: list[tuple[tuple[Any, ...], str, list[str] | None]] = [
        (({"meta": {}, "data": {}},), "malformed envelope", missing),
        (({"meta": {"timestamp": "1", "app": 5, "sign": None, "client": 3, "userId": [],
                    "nonce": ""},
           "data": {"action": 7}},),
         "malformed envelope",
         ["meta.timestamp", "meta.app", "meta.sign", "meta.client", "meta.userId",
          "meta.nonce", "data.action"]),
        (({"meta": {"timestamp": True, "app": SIG_APP, "sign": "x"}, "data": []},),
         "malformed envelope", ["meta.timestamp", "data"]),
        ((envelope_at(SEND_TO_OTHERS, now),), "malformed envelope", ["meta.target"]),
        ((envelope_at(SEND_TO_OTHERS, now, target=""),), "malformed envelope",
         ["meta.target"]),
        (({"meta": "m", "data": {"action": REQUEST_ID}},), "malformed envelope", ["meta"]),
        (("hello",), "malformed envelope", ["envelope"]),
        (([1, 2],), "malformed envelope", ["envelope"]),
        ((42,), "malformed envelope", ["envelope"]),
        ((), "requestMessage takes one envelope, got 0 arguments", None),
        ((envelope_at(REQUEST_ID, now), "extra"),
         "requestMessage takes one envelope, got 2 arguments", None),
        ((envelope_at(REQUEST_ID, now, app="nope", key="k"),), "unknown app 'nope'", None),
        (({**envelope_at(REQUEST_ID, now), "meta": {
            **envelope_at(REQUEST_ID, now)["meta"], "sign": "f" * 32}},), "bad signature",
         None),
        ((envelope_at(REQUEST_ID, now, key="wrong-key"),), "bad signature", None),
        ((envelope_at(REQUEST_ID, now, app=CENTRAL_APP, key=SIG_KEY),), "bad signature", None),
        ((envelope_at(REQUEST_ID, now - WINDOW_MS - 5000),), window, None),
        ((envelope_at(REQUEST_ID, now + WINDOW_MS + 5000),), window, None),
        ((envelope_at("fly", now),), "unknown action 'fly'", None),
        ((envelope_at(SAVE_ID, now),), "action 'saveId' is not accepted from clients", None),
        ((envelope_at(EXCHANGE, now),), "action 'exchange' is not accepted from clients",
         None),
        ((envelope_at(DENY, now),), "action 'deny' is not accepted from clients", None),
        ((signed_request(REQUEST_ID, HMAC_APP, HMAC_KEY),), "bad signature", None),
    ]
    for n, (args, reason, fields) in enumerate(cases):
        bad = client((SLOT0 + SLOT1)[n % (len(SLOT0) + len(SLOT1))])
        bad.connect(cluster.url)
        ack = bad.call(*args)
        assert_deny(ack, reason, fields)
        assert ack["meta"]["client"] == bad.sid
        bad.wait_disconnected()
        # Everyone else is still served, on both workers.
        assert_success(left.request(SEND_TO_OTHERS, target=right.user_id, payload=n),
                       right.user_id)
        assert right.expect(EXCHANGE)["data"]["payload"] == n

    # A handshake whose signature is wrong is refused at connect.
    refused = make_client(SLOT1[1], reconnection=False)
    errors: queue.Queue[Any] = queue.Queue()
    refused.on("connect_error", errors.put)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            refused.connect(cluster.url, auth={"app": SIG_APP, "timestamp": now, "sign": "x"},
                            wait_timeout=TIMEOUT)
        assert errors.get(timeout=TIMEOUT) == {"message": "bad signature"}
    finally:
        refused.shutdown()

    for c in (left, right):
        assert c.sio.connected
        assert action_of(c.request(REQUEST_ID)) == SAVE_ID
        c.assert_quiet()


def test_hmac_app_over_the_socket(gateway: Any, client: Any) -> None:
    cluster = gateway("prod")
    target = client(SLOT1[0])
    target.connect(cluster.url)
    sender = client(SLOT0[0])
    sender.connect(cluster.url)

    envelope = signed_request(SEND_TO_OTHERS, HMAC_APP, HMAC_KEY, payload={"pay": 1},
                              target=target.user_id, scheme="hmac-sha256")
    assert_success(sender.call(envelope), target.user_id)
    got = target.expect(EXCHANGE)
    assert got["data"]["payload"] == {"pay": 1} and got["meta"]["app"] == HMAC_APP

    # The same envelope again: the nonce was used.
    assert_deny(sender.call(envelope), "replayed nonce")
    sender.wait_disconnected()

    # A changed payload under the old signature (and a fresh nonce, or none).
    for meta in ({"nonce": secrets.token_hex(16)}, {"nonce": envelope["meta"]["nonce"]}):
        forger = client(SLOT0[1])
        forger.connect(cluster.url)
        altered = {"meta": {**envelope["meta"], **meta},
                   "data": {**envelope["data"], "payload": {"pay": 1000}}}
        assert_deny(forger.call(altered), "bad signature")
        forger.wait_disconnected()
    no_nonce = client(SLOT0[2])
    no_nonce.connect(cluster.url)
    stripped = {"meta": {k: v for k, v in envelope["meta"].items() if k != "nonce"},
                "data": envelope["data"]}
    assert_deny(no_nonce.call(stripped), "missing nonce")
    no_nonce.wait_disconnected()

    # The sender, disconnected for its replay, was the target's exchange peer.
    assert target.expect(DISCONNECT)["data"]["payload"] == {
        "socketId": sender.sid, "userId": sender.user_id}
    target.assert_quiet()
    assert action_of(target.request(REQUEST_ID, app=HMAC_APP, key=HMAC_KEY,
                                  scheme="hmac-sha256")) == SAVE_ID


def test_lenient_env_keeps_denied_sockets_connected(gateway: Any, client: Any) -> None:
    cluster = gateway("lenient")
    c = client(SLOT0[0])
    c.connect(cluster.url)
    for args in (("hello",), (envelope_at(REQUEST_ID, now_ms(), key="bad"),)):
        assert action_of(c.call(*args)) == DENY
    c.assert_quiet()
    assert c.sio.connected
    assert action_of(c.request(REQUEST_ID)) == SAVE_ID


# --------------------------------------------------------------------- keys from the env


def test_key_from_the_environment_works_and_is_never_logged(gateway: Any, client: Any) -> None:
    cluster = gateway()
    target = client(SLOT1[0])
    target.connect(cluster.url)
    sender = client(SLOT0[0])
    sender.connect(cluster.url)
    ack = sender.request(SEND_TO_OTHERS, app=CENTRAL_APP, key=CENTRAL_KEY,
                         target=target.sid, payload="central")
    assert_success(ack, target.sid)
    got = target.expect(EXCHANGE)
    assert got["meta"]["app"] == CENTRAL_APP and got["data"]["payload"] == "central"
    # The md5 key of another app does not sign for this one.
    assert_deny(sender.request(REQUEST_ID, app=CENTRAL_APP, key=SIG_KEY), "bad signature")
    sender.wait_disconnected()

    reply = bound_session(HTTP_IP).post(
        cluster.url + HTTP_PATH, json=http_body(target.user_id, "web", CENTRAL_APP, CENTRAL_KEY),
        timeout=TIMEOUT)
    assert reply.status_code == 200
    assert target.expect(EXCHANGE)["data"]["payload"] == "web"

    log = cluster.log_text()
    assert "denied a request" in log, "the deny is logged"
    for secret in (CENTRAL_KEY, SIG_KEY, HMAC_KEY):
        assert secret not in log
