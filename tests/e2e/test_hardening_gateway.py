"""Issue 13, the gateway's items: userId claims (1), md5 replays (2), deep payloads (12).

Real `sioctl start --sticky` clusters of tests/apps/gwapp with 2 workers and the shared
redis-server, python-socketio clients from source addresses the master serves from a chosen
worker, plain HTTP for ``POST /api/transportMessage``.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
import requests
import socketio

from sioctl.worker.gateway.config import parse_gateway_config
from sioctl.worker.gateway.memory_registry import MemoryRegistry
from sioctl.worker.gateway.registry import RedisRegistry, Registry
from sioctl.worker.gateway.wire import (
    DENY,
    DISCONNECT,
    EXCHANGE,
    RE_CONNECT_AND_UPDATES,
    RE_CONNECT_UPDATED,
    REQUEST_ID,
    REQUEST_MESSAGE,
    SAVE_ID,
    SEND_TO_OTHERS,
    signed_request,
)
from sioctl.worker.protocol.core.nesting import MAX_DEPTH
from tests.support.clients import bound_session, open_session, reset, wait_until
from tests.support.cluster import ENGINES
from tests.support.gateway import (
    APP_DIR,
    SIG_APP,
    SIG_KEY,
    SLOT0,
    SLOT1,
    TIMEOUT,
    WORKERS,
    GwClient,
    action_of,
    assert_deny,
    assert_success,
    http_body,
    post,
    signed_auth,
)

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


def new_log(cluster: Any, mark: int) -> list[str]:
    """The cluster's log lines written since ``mark`` (a length of cluster.log_text())."""
    return cluster.log_text()[mark:].splitlines()


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


# ----------------------------------------------------------------- 1: userId claims


def deliver_over_http(session: requests.Session, cluster: Any, target: str, message: Any) -> int:
    return post(session, cluster, http_body(target, message)).status_code


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_a_claimed_user_id_never_captures_a_live_user(
    gw: Any, client: Any, signed: bool
) -> None:
    cluster = gw()
    session = bound_session(SLOT0[2])
    victim = client(SLOT1[0])
    victim.connect(cluster.url)
    mark = len(cluster.log_text())

    # The attacker (the other worker) presents the victim's userId in its handshake.
    attacker = client(SLOT0[0])
    auth = signed_auth(userId=victim.user_id) if signed else {"userId": victim.user_id}
    attacker.connect(cluster.url, auth=auth)
    assert attacker.user_id != victim.user_id
    uuid.UUID(attacker.user_id)
    # A signed reconnectAndUpdates is no stronger: the live owner keeps its userId.
    if signed:
        assert_deny(attacker.request(RE_CONNECT_AND_UPDATES, user_id=victim.user_id),
                    "the userId is held by another live connection")
        assert attacker.sio.connected
        assert attacker.request(REQUEST_ID)["data"]["payload"]["userId"] == attacker.user_id

    # Messages to the victim's userId reach the victim, not the attacker.
    assert deliver_over_http(session, cluster, victim.user_id, "for the victim") == 200
    assert victim.expect(EXCHANGE)["data"]["payload"] == "for the victim"
    assert_success(attacker.request(SEND_TO_OTHERS, target=victim.user_id, payload="hi"),
                   victim.user_id)
    assert victim.expect(EXCHANGE)["data"]["payload"] == "hi"
    attacker.assert_quiet()

    # The attacker leaves: the victim's userId still answers while the victim is online.
    attacker.sio.disconnect()
    wait_until(lambda: deliver_over_http(session, cluster, attacker.user_id, 0) == 404,
               TIMEOUT, interval=0.1, what="the attacker to leave the registry")
    assert deliver_over_http(session, cluster, victim.user_id, "still here") == 200
    assert victim.expect(EXCHANGE)["data"]["payload"] == "still here"
    # The attacker had sent to the victim: as its exchange peer, the victim hears it leave.
    assert victim.expect(DISCONNECT)["data"]["payload"] == {
        "socketId": attacker.sid, "userId": attacker.user_id}
    victim.assert_quiet()
    lines = new_log(cluster, mark)
    expected = "claimed a userId held by a live socket" if signed else "unsigned handshake"
    assert len([line for line in lines if expected in line]) == 1, lines


def test_a_signed_claim_takes_a_user_id_nobody_holds(gw: Any, client: Any) -> None:
    """The reconnect the claim is for: once the old socket has gone, a signed handshake (or a
    signed reconnectAndUpdates) gets the userId back."""
    cluster = gw()
    session = bound_session(SLOT0[2])
    first = client(SLOT1[0])
    first.connect(cluster.url)
    user = first.user_id
    first.sio.disconnect()
    wait_until(lambda: deliver_over_http(session, cluster, user, 0) == 404, TIMEOUT,
               interval=0.1, what="the first socket to leave the registry")
    second = client(SLOT0[0])
    second.connect(cluster.url, auth=signed_auth(userId=user))
    assert second.user_id == user
    assert deliver_over_http(session, cluster, user, "back") == 200
    assert second.expect(EXCHANGE)["data"]["payload"] == "back"
    # Two claims of one free userId at once: exactly one wins.
    second.sio.disconnect()
    wait_until(lambda: deliver_over_http(session, cluster, user, 0) == 404, TIMEOUT,
               interval=0.1, what="the second socket to leave the registry")
    racers = [client(ip) for ip in (SLOT0[1], SLOT1[1])]
    for racer in racers:
        racer.connect(cluster.url)
    acks: list[Any] = [None, None]
    threads = [threading.Thread(target=lambda i=i: acks.__setitem__(
        i, racers[i].request(RE_CONNECT_AND_UPDATES, user_id=user))) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert sorted(action_of(ack) for ack in acks) == [DENY, RE_CONNECT_UPDATED], acks
    winner = racers[[action_of(ack) for ack in acks].index(RE_CONNECT_UPDATED)]
    assert deliver_over_http(session, cluster, user, "won") == 200
    assert winner.expect(EXCHANGE)["data"]["payload"] == "won"


def test_the_apps_own_auth_takes_over_and_tells_the_previous_owner(
    gw: Any, client: Any
) -> None:
    """A connection middleware that sets ctx.user_id (tests/apps/gwapp, env "vouch") proves
    the claim: the newer socket wins, the previous owner is told and disconnected."""
    cluster = gw(env="vouch")
    session = bound_session(SLOT0[2])
    user = f"member-{uuid.uuid4()}"
    first = client(SLOT1[0])
    assert first.connect(cluster.url, auth={"token": f"user:{user}"})[
        "data"]["payload"]["userId"] == user
    second = client(SLOT0[0])
    assert second.connect(cluster.url, auth={"token": f"user:{user}"})[
        "data"]["payload"]["userId"] == user
    assert_deny(first.expect(DENY), "userId taken over by a newer connection")
    first.wait_disconnected()
    assert deliver_over_http(session, cluster, user, "newest") == 200
    assert second.expect(EXCHANGE)["data"]["payload"] == "newest"
    # The app set this socket's userId: reconnectAndUpdates cannot change it.
    assert_deny(second.request(RE_CONNECT_AND_UPDATES, user_id=str(uuid.uuid4())),
                "the app set this socket's userId")
    # Without the app's proof, a claim of it (signed or not) gets a fresh userId.
    for ip, auth in ((SLOT1[1], {"userId": user}), (SLOT1[2], signed_auth(userId=user))):
        other = client(ip)
        assert other.connect(cluster.url, auth=auth)["data"]["payload"]["userId"] != user
    assert deliver_over_http(session, cluster, user, "still") == 200
    assert second.expect(EXCHANGE)["data"]["payload"] == "still"
    second.assert_quiet()


# ------------------------------------------------------------------- 2: md5 replays


def with_payload(envelope: dict[str, Any], payload: Any) -> dict[str, Any]:
    """The same signed meta (timestamp, sign) with another payload: md5 does not sign it."""
    return {"meta": dict(envelope["meta"]), "data": {**envelope["data"], "payload": payload}}


def http_replay(envelope: dict[str, Any], target: str, message: Any) -> dict[str, Any]:
    """An HTTP body reusing an envelope's timestamp and sign."""
    meta = envelope["meta"]
    return {"timestamp": meta["timestamp"], "app": meta["app"], "sign": meta["sign"],
            "target": target, "message": message}


def test_md5_replays_are_refused_across_workers(gw: Any, client: Any) -> None:
    """env "replay": signatureApp binds a signature to the socket that used it first
    (same_socket), onceApp accepts each signature once (refuse); centralServiceApp keeps the
    default (allow), as egg-socket.io clients expect."""
    cluster = gw(env="replay")
    session = bound_session(SLOT0[2])
    sender = client(SLOT0[0])
    sender.connect(cluster.url)
    thief = client(SLOT1[0])  # the other worker
    thief.connect(cluster.url)
    target = client(SLOT1[1])
    target.connect(cluster.url)

    # same_socket: the sender reuses its signature for a burst (as egg clients reuse one
    # metaData); the target gets every message.
    envelope = signed_request(SEND_TO_OTHERS, SIG_APP, SIG_KEY, payload=0,
                              target=target.user_id, client=sender.sid)
    for n in range(3):
        assert_success(sender.call(with_payload(envelope, n)), target.user_id)
        assert target.expect(EXCHANGE)["data"]["payload"] == n
    # The same envelope from another socket, on the other worker: refused, and disconnected.
    assert_deny(thief.call(with_payload(envelope, "stolen")), "replayed signature")
    thief.wait_disconnected()
    # Over HTTP: 401.
    reply = post(session, cluster, http_replay(envelope, target.user_id, "stolen"))
    assert (reply.status_code, reply.json()["message"]) == (401, "replayed signature")
    target.assert_quiet()
    # A fresh signature over HTTP is delivered once; the same body again is a replay.
    body = http_body(target.user_id, "once over http")
    assert post(session, cluster, body).status_code == 200
    assert target.expect(EXCHANGE)["data"]["payload"] == "once over http"
    reply = post(session, cluster, body)
    assert (reply.status_code, reply.json()["message"]) == (401, "replayed signature")

    # refuse: once, even from the same socket.
    once = signed_request(SEND_TO_OTHERS, "onceApp", "once-app-key", payload="first",
                          target=target.user_id, client=sender.sid)
    assert_success(sender.call(once), target.user_id)
    assert target.expect(EXCHANGE)["data"]["payload"] == "first"
    assert_deny(sender.call(with_payload(once, "again")), "replayed signature")
    sender.wait_disconnected()
    reply = post(session, cluster, http_replay(once, target.user_id, "again"))
    assert reply.status_code == 401

    # allow (the default): the same envelope from two sockets on two workers, and over HTTP.
    central = signed_request(SEND_TO_OTHERS, "centralServiceApp", ENV["GWAPP_CENTRAL_KEY"],
                             payload="a", target=target.user_id)
    for ip in (SLOT0[1], SLOT1[2]):
        other = client(ip)
        other.connect(cluster.url)
        assert_success(other.call(central), target.user_id)
        assert target.expect(EXCHANGE)["data"]["payload"] == "a"
    assert post(session, cluster, http_replay(central, target.user_id, "b")).status_code == 200
    assert target.expect(EXCHANGE)["data"]["payload"] == "b"
    # The sender, disconnected for its replay, was the target's exchange peer.
    assert target.expect(DISCONNECT)["data"]["payload"] == {
        "socketId": sender.sid, "userId": sender.user_id}
    target.assert_quiet()


def test_md5_signed_handshake_binds_its_signature(gw: Any, client: Any) -> None:
    """same_socket: a handshake's signature may sign the socket's requests too, and no other
    socket's handshake."""
    cluster = gw(env="replay")
    auth = signed_auth()
    owner = client(SLOT0[0])
    owner.connect(cluster.url, auth=auth)
    request = {"meta": {k: auth[k] for k in ("timestamp", "app", "sign")},
               "data": {"action": REQUEST_ID, "payload": None}}
    assert action_of(owner.call(request)) == "saveId"
    copycat = client(SLOT1[0])
    with pytest.raises(socketio.exceptions.ConnectionError):
        copycat.sio.connect(cluster.url, auth=auth, retry=False)
    assert owner.sio.connected


def test_md5_replays_are_refused_by_one_worker_without_redis(gw: Any, client: Any) -> None:
    """The in-process registry (one worker, no Redis) remembers signatures the same way."""
    cluster = gw(env="replay", workers=1, redis_url=None)
    assert "in-memory" in cluster.log_text()
    session = bound_session(SLOT0[2])
    sender, thief, target = (client(ip) for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4"))
    for c in (sender, thief, target):
        c.connect(cluster.url)
    envelope = signed_request(SEND_TO_OTHERS, SIG_APP, SIG_KEY, payload=1,
                              target=target.sid, client=sender.sid)
    assert_success(sender.call(envelope), target.sid)
    assert_success(sender.call(with_payload(envelope, 2)), target.sid)
    assert_deny(thief.call(with_payload(envelope, 3)), "replayed signature")
    assert post(session, cluster, http_replay(envelope, target.sid, 4)).status_code == 401
    assert [target.expect(EXCHANGE)["data"]["payload"] for _ in range(2)] == [1, 2]
    target.assert_quiet()


def test_md5_replay_setting_is_checked() -> None:
    spec = parse_gateway_config({"a": {"key": "k", "md5_replay": "same_socket"}}).apps["a"]
    assert spec.md5_replay == "same_socket"
    assert parse_gateway_config({"a": {"key": "k"}}).apps["a"].md5_replay == "allow"
    with pytest.raises(ValueError, match=r"^socket_config\.a\.md5_replay: expected one of"):
        parse_gateway_config({"a": {"key": "k", "md5_replay": "yes"}})
    with pytest.raises(ValueError, match=r"^socket_config\.a\.md5_replay: only for the md5"):
        parse_gateway_config({"a": {"key": "k", "scheme": "hmac-sha256",
                                    "md5_replay": "refuse"}})


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_registry_remembers_signatures(kind: str, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url) if kind == "redis" else None
    reg: Registry = (RedisRegistry(client, f"hardening-{uuid.uuid4()}:")
                     if client is not None else MemoryRegistry())
    assert reg.claim_signature("app", "s1", "socket:a", 30.0) is True
    assert reg.claim_signature("app", "s1", "socket:a", 30.0) is True  # the same socket
    assert reg.claim_signature("app", "s1", "socket:b", 30.0) is False  # another one
    assert reg.claim_signature("other", "s1", "socket:b", 30.0) is True  # per app
    assert reg.claim_signature("app", "s2", "socket:b", 0.2) is True
    wait_until(lambda: reg.claim_signature("app", "s2", "socket:c", 30.0), TIMEOUT,
               interval=0.05, what="the signature to be forgotten after its TTL")
    if client is not None:
        client.close()


# ------------------------------------------------------------- disconnect storms (issue 16)

# More sockets leaving at once than redis-py 8's default pool holds connections (100).
STORM = 150


@pytest.mark.parametrize("engine", ENGINES)
def test_a_disconnect_storm_unregisters_every_socket(gw: Any, redis_url: str) -> None:
    """Every disconnect handler unregisters its socket at once, each on a connection of its
    own: with redis-py's default pool most failed ("MaxConnectionsError") and their userIds
    stayed online until the entries expired (60 s)."""
    cluster = gw(workers=1)
    sockets = [open_session(cluster.port, "127.0.0.1") for _ in range(STORM)]
    sids = []
    for ws in sockets:
        packet = ws.recv()
        assert isinstance(packet, str) and packet.startswith("42"), packet
        _, saved = json.loads(packet[2:])
        assert action_of(saved) == SAVE_ID
        sids.append(saved["data"]["payload"]["socketId"])
    check = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        keys = [key for sid in sids for key in check.keys(f"*:gw:client:{sid}")]
        assert len(keys) == STORM
        for ws in sockets:
            reset(ws)
        # Well within the entries' 60 s TTL: only unregister removes them this soon.
        wait_until(lambda: check.exists(*keys) == 0, 20.0,
                   what="every socket to leave the registry")
    finally:
        check.close()
    assert "cannot unregister" not in cluster.log_text()
