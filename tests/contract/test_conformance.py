"""Protocol conformance through ``sioctl start --sticky`` with 2 workers, over the raw wire.

Written from the specifications, not through a Socket.IO client library (which would hide
deviations): Engine.IO v4 (socketio/engine.io-protocol README) and Socket.IO v5
(socketio/socket.io-protocol README). Each test checks one MUST and is named after the section
that states it. HTTP long-polling goes through ``requests`` sessions bound to a 127.0.0.x source
address; websockets through websocket-client over a socket bound the same way, so every session
stays on the worker its address hashes to, and the tests cover both worker slots.

Where python-engineio / python-socketio deviate, sioctl's worker corrects them
(sioctl/worker/protocol); the tests of those rules are the ones that failed before it did. A
few checks follow the official test suites (engine.io-protocol and socket.io-protocol
``test-suite``) where the text leaves the exact answer open; their docstrings say so.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from tests.support.clients import wait_until
from tests.support.cluster import ENGINES, Cluster, StartCluster, app_on, module_cluster
from tests.support.conformance import (
    TIMEOUT,
    WORKERS,
    Polling,
    assert_polling_closed,
    assert_ws_closed,
    ip,
    open_websocket,
    receive,
    ws_open,
)

SLOTS = list(range(WORKERS))


@pytest.fixture(scope="module")
def chat(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, module_engine: str
) -> Iterator[Cluster]:
    """One cluster of the chat app for the whole module (booting one per test is too slow)."""
    yield from module_cluster(
        app_on(module_engine, "tests.apps.chat:sio"),
        WORKERS, redis_url, _log_dir(tmp_path_factory),)


@pytest.fixture(scope="module")
def fastping(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, module_engine: str
) -> Iterator[Cluster]:
    """A cluster whose app pings every 0.3 s (tests/apps/fastping.py), for the heartbeat."""
    yield from module_cluster(
        app_on(module_engine, "tests.apps.fastping:sio"),
        WORKERS, redis_url, _log_dir(tmp_path_factory),
    )


@pytest.fixture(scope="module")
def strict(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, module_engine: str
) -> Iterator[Cluster]:
    """The chat app with a 1 s connect timeout (``--connect-timeout``), for the CONNECT rule."""
    yield from module_cluster(
        app_on(module_engine, "tests.apps.chat:sio"),
        WORKERS, redis_url, _log_dir(tmp_path_factory),
        "--connect-timeout", "1",
    )


@pytest.fixture(scope="module")
def engine_sio(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, module_engine: str
) -> Iterator[Cluster]:
    """A socketio app whose event ``disconnect_everyone`` calls ``sio.eio.disconnect()``
    (tests/apps/engine.py)."""
    yield from module_cluster(
        app_on(module_engine, "tests.apps.engine:sio"),
        WORKERS, redis_url, _log_dir(tmp_path_factory),
    )


def _log_dir(factory: pytest.TempPathFactory) -> Path:
    return factory.mktemp("conformance")


def check_open_payload(handshake: dict[str, Any], upgrades: list[str]) -> None:
    assert set(handshake) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(handshake["sid"], str) and handshake["sid"]
    assert handshake["upgrades"] == upgrades
    for key in ("pingInterval", "pingTimeout", "maxPayload"):
        assert isinstance(handshake[key], int) and handshake[key] > 0, (key, handshake)


# --- Engine.IO v4: Transports > HTTP long-polling ---------------------------------------------


@pytest.mark.parametrize("query", ["transport=polling", "EIO=abc&transport=polling"])
def test_eio_polling_query_parameters_missing_eio(chat: Cluster, query: str) -> None:
    """Query parameters: "If a mandatory query parameter is missing, then the server MUST
    respond with an HTTP 400 error status." (EIO missing or not a version.)"""
    client = Polling(chat, ip(0))
    assert client.get(query).status_code == 400


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_polling_sending_data_unknown_sid(chat: Cluster, slot: int) -> None:
    """Sending data: "The server MUST return an HTTP 400 response if the session ID (from the
    `sid` query parameter) is not known." """
    client = Polling(chat, ip(slot))
    assert client.post("EIO=4&transport=polling&sid=unknown-sid", "40").status_code == 400


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_polling_receiving_data_unknown_sid(chat: Cluster, slot: int) -> None:
    """Receiving data: "The server MUST return an HTTP 400 response if the session ID (from the
    `sid` query parameter) is not known." """
    client = Polling(chat, ip(slot))
    assert client.get("EIO=4&transport=polling&sid=unknown-sid").status_code == 400


@pytest.mark.parametrize("query", ["EIO=4", "EIO=4&transport=abc"])
def test_eio_polling_query_parameters_missing_transport(chat: Cluster, query: str) -> None:
    """Query parameters: "If a mandatory query parameter is missing, then the server MUST
    respond with an HTTP 400 error status." (`transport` missing or not a transport.)"""
    client = Polling(chat, ip(1))
    assert client.get(query).status_code == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_eio_handshake_requires_get(chat: Cluster, method: str) -> None:
    """Handshake: "the client MUST send an HTTP `GET` request"; any other method opens no
    session and gets a 400 (the official test suite: "fails with an invalid request method")."""
    client = Polling(chat, ip(0))
    reply = client.http.request(method, client.url("EIO=4&transport=polling"), timeout=TIMEOUT)
    assert reply.status_code == 400
    assert not reply.text.startswith("0{")


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_polling_sending_data_ok(chat: Cluster, slot: int) -> None:
    """Sending data: "To indicate success, the server MUST return an HTTP 200 response, with
    the string `ok` in the response body." """
    client = Polling(chat, ip(slot))
    try:
        client.connect_namespace()
        reply = client.send('42["echo","x"]')
        assert (reply.status_code, reply.text) == (200, "ok")
    finally:
        client.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_polling_receiving_data_one_active_get(chat: Cluster, slot: int) -> None:
    """Receiving data: "a client MUST NOT have more than one active `GET` request. Should it
    happen, the server MUST return an HTTP 400 error status and close the session." (The first
    GET ends with the `close` packet, as in the official test suite.)"""
    client = Polling(chat, ip(slot, 3))
    client.open()
    first = client.pending_get()
    time.sleep(0.5)  # let the first GET reach the worker and wait there
    second = client.get(f"EIO=4&transport=polling&sid={client.sid}")
    assert second.status_code == 400
    assert first.result() == (200, "1")
    assert client.get(f"EIO=4&transport=polling&sid={client.sid}").status_code == 400


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_polling_sending_data_one_active_post(chat: Cluster, slot: int) -> None:
    """Sending data: "a client MUST NOT have more than one active `POST` request. Should it
    happen, the server MUST return an HTTP 400 error status and close the session." (The first
    POST is held open by sending its body slowly.)"""
    source = ip(slot, 4)
    client = Polling(chat, source)
    client.connect_namespace()
    body = b'42["echo","slow"]'
    slow = socket.create_connection(("127.0.0.1", chat.port), timeout=TIMEOUT,
                                    source_address=(source, 0))
    try:
        slow.sendall(
            f"POST /socket.io/?EIO=4&transport=polling&sid={client.sid} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{chat.port}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:4]
        )
        time.sleep(0.5)  # the worker is now reading the first POST's body
        assert client.send('42["echo","fast"]').status_code == 400
        slow.sendall(body[4:])
        slow.recv(4096)  # whatever the first POST gets, the session is over
    finally:
        slow.close()
    assert_polling_closed(client)


@pytest.mark.parametrize(
    "body", ["abc", "", "9", "2", "0", "6", "5", "b!!!", '4{"not":"socket.io"}\x1e9'],
    ids=["text", "empty", "unknown-type", "ping", "open", "noop", "upgrade", "bad-base64",
         "bad-second"],
)
def test_eio_polling_invalid_packet_closes_session(chat: Cluster, body: str) -> None:
    """Packet encoding: a payload that is not a sequence of packets a client may send (unknown
    type, server-only types such as `ping` since v4, bad base64) gets a 400 and closes the
    session (the official test suite: "closes the session upon invalid packet format")."""
    client = Polling(chat, ip(0, 5))
    client.open()
    reply = client.post(f"EIO=4&transport=polling&sid={client.sid}", body)
    assert reply.status_code == 400
    assert client.get(f"EIO=4&transport=polling&sid={client.sid}").status_code == 400


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_polling_payload_of_many_packets(chat: Cluster, slot: int) -> None:
    """Packet encoding > HTTP long-polling: "multiple packets might be concatenated in a single
    payload"; every one of them is delivered (python-engineio alone drops all of a payload of
    more than 16 packets while answering 200)."""
    client = Polling(chat, ip(slot, 5))
    try:
        client.connect_namespace()
        events = [f'42{n}["echo",{n}]' for n in range(40)]
        assert client.send(*events).status_code == 200
        acks: list[str] = []
        while len(acks) < len(events):
            acks += client.poll()
        # Events are handled concurrently: their acks may come in any order.
        assert sorted(acks) == sorted(f"43{n}[{n}]" for n in range(40))
    finally:
        client.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_polling_close_packet(chat: Cluster, slot: int) -> None:
    """Protocol: the `close` packet "is used to indicate that a transport can be closed": the
    pending GET ends (with a `noop`, as in the official test suite) and the session is gone."""
    client = Polling(chat, ip(slot, 6))
    client.open()
    pending = client.pending_get()
    time.sleep(0.5)  # the GET is waiting on the worker
    assert client.send("1").status_code == 200
    assert pending.result() == (200, "6")
    assert client.get(f"EIO=4&transport=polling&sid={client.sid}").status_code == 400


# --- Engine.IO v4: Transports > WebSocket -----------------------------------------------------


@pytest.mark.parametrize("query", ["transport=websocket", "EIO=abc&transport=websocket"])
def test_eio_websocket_query_parameters_missing_eio(chat: Cluster, query: str) -> None:
    """WebSocket: "If a mandatory query parameter is missing, then the server MUST close the
    WebSocket connection." (Refusing the upgrade is the earliest close.)"""
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        open_websocket(chat, ip(1), query)
    assert refused.value.status_code == 400


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_websocket_one_connection_per_session(chat: Cluster, slot: int) -> None:
    """WebSocket: "A client MUST NOT open more than one WebSocket connection per session. Should
    it happen, the server MUST close the WebSocket connection." As the reference server does
    (the official test suite: "ignores WebSocket connection with same sid after upgrade"), the
    second websocket is accepted, then closed; the session goes on over the first."""
    client = Polling(chat, ip(slot, 1))
    client.open()
    query = f"EIO=4&transport=websocket&sid={client.sid}"
    first = open_websocket(chat, ip(slot, 1), query)
    try:
        first.send("2probe")
        assert receive(first) == "3probe"
        first.send("5")
        second = open_websocket(chat, ip(slot, 1), query)
        try:
            assert_ws_closed(second)
        finally:
            second.close()
        first.send("40")
        assert str(receive(first)).startswith("40{")
    finally:
        first.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_websocket_one_connection_per_session_during_upgrade(chat: Cluster, slot: int) -> None:
    """WebSocket: one connection per session, while the first one's upgrade is under way (probe
    answered, no upgrade packet yet): the second is accepted and closed; the upgrade of the
    first completes."""
    client = Polling(chat, ip(slot, 3))
    client.open()
    query = f"EIO=4&transport=websocket&sid={client.sid}"
    first = open_websocket(chat, ip(slot, 3), query)
    try:
        first.send("2probe")
        assert receive(first) == "3probe"
        second = open_websocket(chat, ip(slot, 3), query)
        try:
            assert_ws_closed(second)
        finally:
            second.close()
        first.send("5")
        first.send("40")
        assert str(receive(first)).startswith("40{")
    finally:
        first.close()


@pytest.mark.parametrize("query", ["EIO=4", "EIO=4&transport=abc"])
def test_eio_websocket_query_parameters_missing_transport(chat: Cluster, query: str) -> None:
    """WebSocket: "If a mandatory query parameter is missing, then the server MUST close the
    WebSocket connection." (`transport` missing or unknown: the upgrade is refused.)"""
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        open_websocket(chat, ip(0), query)
    assert refused.value.status_code == 400


@pytest.mark.parametrize(
    "frame", ["abc", "", "9zz", "2", "0", "6"],
    ids=["text", "empty", "unknown-type", "ping", "open", "noop"],
)
def test_eio_websocket_invalid_packet_closes(chat: Cluster, frame: str) -> None:
    """WebSocket: a frame that is not a packet a client may send closes the connection, cleanly
    (no HTTP status line written onto the upgraded socket; the official test suite: "closes the
    session upon invalid packet format")."""
    ws, _ = ws_open(chat, ip(1, 4))
    try:
        ws.send(frame)
        assert_ws_closed(ws)
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_websocket_close_packet(chat: Cluster, slot: int) -> None:
    """Protocol: the client's `close` packet closes the transport (the official test suite:
    "forcefully closes the session")."""
    ws, _ = ws_open(chat, ip(slot, 5))
    try:
        ws.send("1")
        assert_ws_closed(ws)
    finally:
        ws.close()


# --- Engine.IO v4: Protocol > Handshake -------------------------------------------------------


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_handshake_open_packet_fields(chat: Cluster, slot: int) -> None:
    """Handshake: "If the server accepts the connection, then it MUST respond with an `open`
    packet with the following JSON-encoded payload: sid, upgrades, pingInterval, pingTimeout,
    maxPayload." (HTTP long-polling: upgrades to websocket.)"""
    client = Polling(chat, ip(slot))
    try:
        check_open_payload(client.open(), ["websocket"])
    finally:
        client.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_handshake_websocket_open_packet_fields(chat: Cluster, slot: int) -> None:
    """Handshake: the server "MUST respond with an `open` packet" with sid, upgrades,
    pingInterval, pingTimeout, maxPayload. (WebSocket-only session: nothing to upgrade to.)"""
    ws, handshake = ws_open(chat, ip(slot))
    try:
        check_open_payload(handshake, [])
    finally:
        ws.close()


# --- Engine.IO v4: Protocol > Heartbeat -------------------------------------------------------


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_heartbeat_server_pings_polling(fastping: Cluster, slot: int) -> None:
    """Heartbeat: "At a given interval (the `pingInterval` value sent in the handshake) the
    server sends a `ping` packet and the client has ... (the `pingTimeout` value) to send a
    `pong` packet back." (HTTP long-polling; the app pings every 0.3 s.)"""
    client = Polling(fastping, ip(slot))
    try:
        client.open()
        for _ in range(3):
            assert client.poll() == ["2"]
            assert client.send("3").status_code == 200
    finally:
        client.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_heartbeat_server_pings_websocket(fastping: Cluster, slot: int) -> None:
    """Heartbeat: "At a given interval (the `pingInterval` value sent in the handshake) the
    server sends a `ping` packet" the client answers with a `pong`. (WebSocket.)"""
    ws, _ = ws_open(fastping, ip(slot))
    try:
        for _ in range(3):
            assert receive(ws, skip_pings=False) == "2"
            ws.send("3")
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_heartbeat_ping_timeout_polling(fastping: Cluster, slot: int) -> None:
    """Heartbeat: "If the server does not receive a `pong` packet back, then it SHOULD consider
    that the connection is closed": a poll after pingInterval + pingTimeout without a pong gets
    the 400 of a closed session (the official test suite: "closes the session upon ping
    timeout"). The app pings every 0.3 s and waits 1 s for the pong."""
    client = Polling(fastping, ip(slot, 3))
    client.open()
    time.sleep(2.0)  # well past 0.3 s + 1 s, without polling or answering
    # A fresh connection: the idle keep-alive one is closed by the worker after --keepalive
    # (2 s), which would race with this request.
    client.http.close()
    assert client.get(f"EIO=4&transport=polling&sid={client.sid}").status_code == 400


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_heartbeat_ping_timeout_websocket(fastping: Cluster, slot: int) -> None:
    """Heartbeat: a websocket client that never answers the server's pings is closed."""
    ws, _ = ws_open(fastping, ip(slot, 4))
    try:
        frames = assert_ws_closed(ws)
        assert "2" in frames  # it was pinged first
    finally:
        ws.close()


# --- Engine.IO v4: Protocol > Upgrade ---------------------------------------------------------


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_upgrade_probe(chat: Cluster, slot: int) -> None:
    """Upgrade: the server MUST "send a `noop` packet to any pending `GET` request (if
    applicable) to cleanly close HTTP long-polling transport" and "respond with a `pong` packet
    with the string `probe` in the payload"; the client's `upgrade` packet completes it."""
    source = ip(slot, 2)
    client = Polling(chat, source)
    client.connect_namespace()
    pending = client.pending_get()
    ws = open_websocket(chat, source, f"EIO=4&transport=websocket&sid={client.sid}")
    try:
        ws.send("2probe")
        assert receive(ws) == "3probe"
        assert pending.result() == (200, "6")
        ws.send("5")
        # The session now lives on the websocket.
        ws.send('421["echo","upgraded"]')
        assert receive(ws) == '431["upgraded"]'
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_upgrade_polling_refused_after(chat: Cluster, slot: int) -> None:
    """Upgrade: once the `upgrade` packet is received, the session lives on the websocket;
    a long-polling request with its sid gets a 400 and the websocket goes on (the official test
    suite: "ignores HTTP requests with same sid after upgrade")."""
    source = ip(slot, 7)
    client = Polling(chat, source)
    client.connect_namespace()
    ws = open_websocket(chat, source, f"EIO=4&transport=websocket&sid={client.sid}")
    try:
        ws.send("2probe")
        assert receive(ws) == "3probe"
        ws.send("5")
        ws.send('421["echo","after"]')
        assert receive(ws) == '431["after"]'
        assert client.get(f"EIO=4&transport=polling&sid={client.sid}").status_code == 400
        ws.send('422["echo","still"]')
        assert receive(ws) == '432["still"]'
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_upgrade_polling_refused_right_after(chat: Cluster, slot: int) -> None:
    """Upgrade: as the official test suite sends them ("ignores HTTP requests with same sid
    after upgrade"): probe, upgrade packet and a poll straight after; the poll gets 400."""
    source = ip(slot, 8)
    client = Polling(chat, source)
    client.connect_namespace()
    ws = open_websocket(chat, source, f"EIO=4&transport=websocket&sid={client.sid}")
    try:
        ws.send("2probe")
        ws.send("5")
        assert client.get(f"EIO=4&transport=polling&sid={client.sid}").status_code == 400
        assert receive(ws) == "3probe"
        ws.send('421["echo","after"]')
        assert receive(ws) == '431["after"]'
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_upgrade_poll_during_upgrade(chat: Cluster, slot: int) -> None:
    """Upgrade: a poll sent once the probe is answered, just before the upgrade packet, gets
    the 400 of an upgraded session too, however close the two are (python-engineio answered it
    with a noop, 200), and the websocket goes on."""
    source = ip(slot, 9)
    client = Polling(chat, source)
    client.connect_namespace()
    ws = open_websocket(chat, source, f"EIO=4&transport=websocket&sid={client.sid}")
    try:
        ws.send("2probe")
        assert receive(ws) == "3probe"
        pending = client.pending_get()
        time.sleep(0.02)  # let the poll reach the worker first
        ws.send("5")
        result = pending.result()
        assert isinstance(result, tuple) and result[0] == 400, result
        ws.send('421["echo","after"]')
        assert receive(ws) == '431["after"]'
    finally:
        ws.close()


# --- The rules survive python-engineio replacing its sessions ---------------------------------


@pytest.mark.parametrize("slot", SLOTS)
def test_rules_after_engineio_disconnect_all(engine_sio: Cluster, slot: int) -> None:
    """python-engineio's ``disconnect()`` without a sid replaces its sessions dict
    (``self.sockets = {}``); sessions opened after it still follow the rules (here: an invalid
    packet gets a 400 and closes the session; python-engineio alone answers 200)."""
    ws, _ = ws_open(engine_sio, ip(slot, 6))
    try:
        ws.send("40")
        assert str(receive(ws)).startswith("40{")
        ws.send('421["disconnect_everyone"]')
        assert_ws_closed(ws)
    finally:
        ws.close()
    client = Polling(engine_sio, ip(slot, 6))
    client.open()
    assert client.send("abc").status_code == 400
    assert_polling_closed(client)


# --- Engine.IO without Socket.IO ---------------------------------------------------------------


@pytest.fixture(scope="module")
def engine_only(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, module_engine: str
) -> Iterator[Cluster]:
    """A bare engineio.Server app that echoes every message (tests/apps/engine.py)."""
    yield from module_cluster(
        app_on(module_engine, "tests.apps.engine:app"),
        WORKERS, redis_url, _log_dir(tmp_path_factory),
    )


@pytest.fixture(scope="module")
def engine_beside(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, module_engine: str
) -> Iterator[Cluster]:
    """socket.io at /socket.io/ and a bare engineio.Server at /raw/ pinging every 0.3 s."""
    yield from module_cluster(
        app_on(module_engine, "tests.apps.engine:mixed"),
        WORKERS, redis_url, _log_dir(tmp_path_factory),
    )


@pytest.mark.parametrize("slot", SLOTS)
def test_engine_only_app_polling(engine_only: Cluster, slot: int) -> None:
    """An app whose server is a bare engineio.Server is served: handshake, messages both
    ways over long-polling."""
    client = Polling(engine_only, ip(slot), path="engine.io")
    try:
        check_open_payload(client.open(), ["websocket"])
        assert client.send("4hello").status_code == 200
        assert client.poll() == ["4hello"]
    finally:
        client.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_engine_only_app_upgrade(engine_only: Cluster, slot: int) -> None:
    """A bare engineio.Server's sessions upgrade to a websocket, and a second websocket for
    the session is accepted and closed, as with socket.io."""
    source = ip(slot, 1)
    client = Polling(engine_only, source, path="engine.io")
    client.open()
    query = f"EIO=4&transport=websocket&sid={client.sid}"
    ws = open_websocket(engine_only, source, query, path="engine.io")
    try:
        ws.send("2probe")
        assert receive(ws) == "3probe"
        ws.send("5")
        second = open_websocket(engine_only, source, query, path="engine.io")
        try:
            assert_ws_closed(second)
        finally:
            second.close()
        ws.send("4over the websocket")
        assert receive(ws) == "4over the websocket"
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_engine_only_app_rules(engine_only: Cluster, slot: int) -> None:
    """A bare engineio.Server gets the Engine.IO rules: a handshake without `transport` gets
    400, an invalid packet gets 400 and closes the session (python-engineio alone: a polling
    session, and 200)."""
    client = Polling(engine_only, ip(slot, 2), path="engine.io")
    assert client.get("EIO=4").status_code == 400
    client.open()
    assert client.send("abc").status_code == 400
    assert_polling_closed(client)


@pytest.mark.parametrize("slot", SLOTS)
def test_engine_only_rules_after_disconnect_all(engine_only: Cluster, slot: int) -> None:
    """After the app's ``eio.disconnect()`` (which replaces python-engineio's sessions dict),
    new sessions of a bare engineio.Server still follow the rules."""
    ws = open_websocket(engine_only, ip(slot, 3), "EIO=4&transport=websocket", path="engine.io")
    try:
        assert str(receive(ws)).startswith("0{")
        ws.send("4disconnect-everyone")
        assert_ws_closed(ws)
    finally:
        ws.close()
    client = Polling(engine_only, ip(slot, 3), path="engine.io")
    client.open()
    assert client.send("abc").status_code == 400
    assert_polling_closed(client)


@pytest.mark.parametrize("slot", SLOTS)
def test_engine_beside_socketio(engine_beside: Cluster, slot: int) -> None:
    """An app that mounts a bare engineio.Server beside its socket.io server: both are
    served, and the engine.io one gets the rules too, its 0.3 s ping interval advertised as
    300 ms (python-engineio alone: 0) and an invalid packet refused."""
    raw = Polling(engine_beside, ip(slot, 4), path="raw")
    handshake = raw.open()
    assert handshake["pingInterval"] == 300
    assert raw.send("4beside").status_code == 200
    assert raw.poll() == ["4beside"]
    assert raw.send("abc").status_code == 400
    assert_polling_closed(raw)
    client = Polling(engine_beside, ip(slot, 5))
    try:
        client.connect_namespace()
        assert client.send('421["echo","socket.io"]').status_code == 200
        assert client.poll() == ['431["socket.io"]']
    finally:
        client.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_beside_sessions_counted_and_drained(start_cluster: StartCluster,
                                                    engine: str) -> None:
    """The sessions of an engineio.Server mounted beside socket.io count in the worker's
    figures, and a drain (SIGTERM) closes them as it closes socket.io's."""
    cluster = start_cluster(app=app_on(engine, "tests.apps.engine:mixed"), workers=WORKERS,
                            extra_args=("--graceful-timeout", "3"))
    source = ip(0, 6)
    raw = open_websocket(cluster, source, "EIO=4&transport=websocket", path="raw")
    sio = open_websocket(cluster, source, "EIO=4&transport=websocket")
    try:
        assert str(receive(raw)).startswith("0{") and str(receive(sio)).startswith("0{")

        def slot0_sessions() -> bool:
            slots = cluster.status()["slots"]
            return any(slot["slot"] == 0 and slot.get("sessions") == 2 for slot in slots)

        wait_until(slot0_sessions, TIMEOUT, what="both sessions counted")
        cluster.signal(signal.SIGTERM)
        assert_ws_closed(raw)
        assert_ws_closed(sio)
        assert cluster.wait_exit(TIMEOUT + 3) == 0, cluster.log_text()
    finally:
        raw.close()
        sio.close()


# --- Engine.IO v4: Packet encoding ------------------------------------------------------------


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_polling_payload_separator(chat: Cluster, slot: int) -> None:
    """Packet encoding > HTTP long-polling: "The packets are separated by the record separator
    character: `\\x1e`" (both in a POST body and in a GET response)."""
    client = Polling(chat, ip(slot, 1))
    try:
        client.connect_namespace()
        assert client.send('421["echo","a"]', '422["echo","b"]').status_code == 200
        packets = client.poll()
        while len(packets) < 2:
            packets += client.poll()
        assert packets == ['431["a"]', '432["b"]']
    finally:
        client.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_polling_binary_base64(chat: Cluster, slot: int) -> None:
    """Packet encoding > HTTP long-polling: "Binary payloads MUST be base64-encoded and prefixed
    with a `b` character" (the server's binary ACK attachment comes back as `bAQID`)."""
    client = Polling(chat, ip(slot, 2))
    try:
        client.connect_namespace()
        event = '451-1["echo",{"_placeholder":true,"num":0}]'
        assert client.send(event, "bAQID").status_code == 200
        packets = client.poll()
        while len(packets) < 2:
            packets += client.poll()
        assert packets == ['461-1[{"_placeholder":true,"num":0}]', "bAQID"]
    finally:
        client.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_websocket_binary_frames(chat: Cluster, slot: int) -> None:
    """Packet encoding > WebSocket: "Each Engine.IO packet is sent in its own WebSocket frame"
    and "Binary payloads are sent as is, without modification." """
    ws, _ = ws_open(chat, ip(slot, 1))
    try:
        ws.send("40")
        assert str(receive(ws)).startswith("40{")
        ws.send('451-7["echo",{"_placeholder":true,"num":0}]')
        ws.send_binary(b"\x01\x02\x03\x04")
        assert receive(ws) == '461-7[{"_placeholder":true,"num":0}]'
        assert receive(ws) == b"\x01\x02\x03\x04"
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_websocket_large_frames(chat: Cluster, slot: int) -> None:
    """Packet encoding > WebSocket: each packet in its own frame, binary "as is": a 300 KB text
    event and a 300 KB binary attachment (masked by the client, RFC 6455 5.3) come back intact."""
    ws, _ = ws_open(chat, ip(slot, 12))
    try:
        ws.send("40")
        assert str(receive(ws)).startswith("40{")
        text = "".join(chr(0x61 + n % 26) for n in range(300_000))
        ws.send(f'428["echo","{text}"]')
        assert receive(ws) == f'438["{text}"]'
        blob = bytes(n % 251 for n in range(300_000))
        ws.send('451-9["echo",{"_placeholder":true,"num":0}]')
        ws.send_binary(blob)
        assert receive(ws) == '461-9[{"_placeholder":true,"num":0}]'
        assert receive(ws) == blob
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_eio_websocket_frames_together_and_split(chat: Cluster, slot: int) -> None:
    """Packet encoding > WebSocket, "each Engine.IO packet is sent in its own WebSocket frame",
    however TCP delivers the frames: fifty in one write (read from the worker's buffer of one
    read, docs/design.md "The websocket read path") and one written a byte at a time are each
    answered, in order."""
    ws, _ = ws_open(chat, ip(slot, 13))
    try:
        ws.send("40")
        assert str(receive(ws)).startswith("40{")
        frames = [websocket.ABNF.create_frame(f'42{n}["echo",{n}]', websocket.ABNF.OPCODE_TEXT)
                  for n in range(50)]
        ws.sock.sendall(b"".join(frame.format() for frame in frames))
        assert [receive(ws) for _ in range(50)] == [f"43{n}[{n}]" for n in range(50)]
        split = websocket.ABNF.create_frame('4299["echo","split"]', websocket.ABNF.OPCODE_TEXT)
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a segment per byte
        for byte in split.format():
            ws.sock.sendall(bytes([byte]))
        assert receive(ws) == '4399["split"]'
    finally:
        ws.close()


# --- Socket.IO v5: Exchange protocol > Connection to a namespace ------------------------------


@pytest.mark.parametrize("slot", SLOTS)
def test_sio_connect_default_namespace(chat: Cluster, slot: int) -> None:
    """Connection to a namespace: "The server MUST respond with ... a `CONNECT` packet if the
    connection is successful, with the session ID in the payload" (HTTP long-polling)."""
    client = Polling(chat, ip(slot))
    try:
        client.open()
        assert client.send("40").status_code == 200
        packets = client.poll()
        assert packets[0].startswith("40{"), packets
        assert set(json.loads(packets[0][2:])) == {"sid"}
    finally:
        client.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_sio_connect_default_namespace_websocket(chat: Cluster, slot: int) -> None:
    """Connection to a namespace: "The server MUST respond with ... a `CONNECT` packet if the
    connection is successful, with the session ID in the payload" (WebSocket)."""
    ws, handshake = ws_open(chat, ip(slot, 2))
    try:
        ws.send("40")
        reply = receive(ws)
        assert isinstance(reply, str) and reply.startswith("40{"), reply
        data = json.loads(reply[2:])
        assert set(data) == {"sid"} and isinstance(data["sid"], str)
        # Socket.IO v5: the Socket id differs from the Engine.IO session id.
        assert data["sid"] != handshake["sid"]
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_sio_connect_with_payload(chat: Cluster, slot: int) -> None:
    """Connection to a namespace (with an additional payload): the server MUST still answer a
    successful `CONNECT` with `{ sid: ... }`."""
    ws, _ = ws_open(chat, ip(slot))
    try:
        ws.send('40{"token":"123"}')
        reply = receive(ws)
        assert isinstance(reply, str) and reply.startswith("40{"), reply
        assert set(json.loads(reply[2:])) == {"sid"}
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_sio_connect_unknown_namespace(chat: Cluster, slot: int) -> None:
    """Connection to a namespace: the server MUST respond "with a `CONNECT_ERROR` packet if the
    connection is not allowed", whose payload is `{ message: ... }` ("Invalid namespace" for one
    the server does not serve, as the reference server and its test suite say)."""
    ws, _ = ws_open(chat, ip(slot, 6))
    try:
        ws.send("40/random,")
        assert receive(ws) == '44/random,{"message":"Invalid namespace"}'
        # The connection itself stays usable for the namespaces that exist.
        ws.send("40")
        assert str(receive(ws)).startswith("40{")
    finally:
        ws.close()
    client = Polling(chat, ip(slot, 7))
    try:
        client.open()
        assert client.send("40/random,").status_code == 200
        assert client.poll() == ['44/random,{"message":"Invalid namespace"}']
    finally:
        client.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_sio_connect_custom_namespace(chat: Cluster, slot: int) -> None:
    """Connection to a namespace (custom namespace, with an additional payload): the server
    MUST respond with a `CONNECT` packet with the session ID, or a `CONNECT_ERROR` packet if
    the connection is not allowed (`{ message: ... }`, from the app's refusal)."""
    ws, _ = ws_open(chat, ip(slot, 10))
    try:
        ws.send('40/admin,{"token":"wrong"}')
        assert receive(ws) == '44/admin,{"message":"Not authorized"}'
        ws.send('40/admin,{"token":"secret"}')
        reply = str(receive(ws))
        assert reply.startswith("40/admin,{"), reply
        assert set(json.loads(reply[len("40/admin,"):])) == {"sid"}
        ws.send('42/admin,5["echo","admin"]')
        assert receive(ws) == '43/admin,5["admin"]'
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_sio_disconnect_custom_namespace(chat: Cluster, slot: int) -> None:
    """Disconnection from a namespace: "No response is expected from the other side. The
    low-level connection MAY be kept alive if the client is connected to another namespace."
    (After leaving /admin, the default namespace goes on over the same websocket.)"""
    ws, _ = ws_open(chat, ip(slot, 11))
    try:
        ws.send("40")
        assert str(receive(ws)).startswith("40{")
        ws.send('40/admin,{"token":"secret"}')
        assert str(receive(ws)).startswith("40/admin,{")
        ws.send("41/admin,")
        ws.send('42/admin,6["echo","gone"]')  # ignored: no longer connected to /admin
        ws.send('427["echo","main"]')
        assert receive(ws) == '437["main"]'
    finally:
        ws.close()


@pytest.mark.parametrize(
    "first", ['42["echo","x"]', "4abc", "41", "43[]", "4"],
    ids=["event", "garbage", "disconnect", "ack", "empty"],
)
def test_sio_connect_must_come_first(chat: Cluster, first: str) -> None:
    """Connection to a namespace: "If the server does not receive a `CONNECT` packet first,
    then it MUST close the connection immediately." """
    ws, _ = ws_open(chat, ip(0, 6))
    try:
        ws.send(first)
        assert_ws_closed(ws)
    finally:
        ws.close()


def test_sio_connect_must_come_first_polling(chat: Cluster) -> None:
    """Connection to a namespace: a first packet other than `CONNECT` closes the connection
    (HTTP long-polling)."""
    client = Polling(chat, ip(1, 6))
    client.open()
    assert client.send('42["echo","x"]').status_code == 200
    assert_polling_closed(client)


@pytest.mark.parametrize("slot", SLOTS)
def test_sio_connect_timeout(strict: Cluster, slot: int) -> None:
    """Connection to a namespace: "At the beginning of a Socket.IO session, the client MUST
    send a `CONNECT` packet"; one that never does is closed after the connect timeout (here
    ``--connect-timeout 1``), while answering pings does not keep it open."""
    ws, _ = ws_open(strict, ip(slot, 8))
    try:
        assert_ws_closed(ws)
    finally:
        ws.close()
    # A session that connects in time is not affected.
    ws, _ = ws_open(strict, ip(slot, 9))
    try:
        ws.send("40")
        assert str(receive(ws)).startswith("40{")
        time.sleep(1.5)
        ws.send('427["echo","alive"]')
        assert receive(ws) == '437["alive"]'
    finally:
        ws.close()


# --- Socket.IO v5: Exchange protocol > Sending and receiving data, Acknowledgement ------------


@pytest.mark.parametrize("slot", SLOTS)
def test_sio_event_and_ack(chat: Cluster, slot: int) -> None:
    """Acknowledgement: "The receiver MUST respond with an `ACK` packet with the same event ID"
    and its payload "MUST be an array (possibly empty)." (WebSocket and HTTP long-polling.)"""
    ws, _ = ws_open(chat, ip(slot, 1))
    try:
        ws.send("40")
        assert str(receive(ws)).startswith("40{")
        ws.send('4212["echo",{"a":[1,"2",true]}]')
        assert receive(ws) == '4312[{"a":[1,"2",true]}]'
        ws.send('4213["echo"]')
        ack = receive(ws)
        assert isinstance(ack, str) and ack.startswith("4313")
        assert isinstance(json.loads(ack[4:]), list)
    finally:
        ws.close()
    client = Polling(chat, ip(slot, 2))
    try:
        client.connect_namespace()
        assert client.send('4214["echo","polled"]').status_code == 200
        assert client.poll() == ['4314["polled"]']
    finally:
        client.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_sio_binary_event_and_binary_ack(chat: Cluster, slot: int) -> None:
    """Acknowledgement (with binary data): a `BINARY_EVENT` with an id MUST be answered with an
    acknowledgement of the same id; binary data comes back as `BINARY_ACK` plus attachments."""
    ws, _ = ws_open(chat, ip(slot, 2))
    try:
        ws.send("40")
        assert str(receive(ws)).startswith("40{")
        ws.send('452-15["echo",[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]]')
        ws.send_binary(b"\x01\x02")
        ws.send_binary(b"\x03\x04")
        assert receive(ws) == (
            '462-15[[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]]'
        )
        assert receive(ws) == b"\x01\x02"
        assert receive(ws) == b"\x03\x04"
    finally:
        ws.close()


def test_sio_server_event_reaches_both_workers(chat: Cluster) -> None:
    """Sending and receiving data: the server's `EVENT` arrives as `42[...]` with a non-empty
    array payload, on a client of each worker (the emit crosses workers through Redis)."""
    sockets = []
    try:
        for slot in SLOTS:
            ws, _ = ws_open(chat, ip(slot, 3))
            ws.send("40")
            assert str(receive(ws)).startswith("40{")
            sockets.append(ws)
        sockets[0].send('42["broadcast","hello"]')
        for ws in sockets:
            frame = receive(ws)
            while not str(frame).startswith("42"):
                frame = receive(ws)
            payload = json.loads(str(frame)[2:])
            assert payload == ["news", "hello"]
    finally:
        for ws in sockets:
            ws.close()


@pytest.mark.parametrize(
    "packet",
    ['42{"a":1}', "42[]", '42"echo"', "42[1]", '42["echo"', "42", "47[]", '44{"message":"x"}',
     '43[]', '43{"a":1}'],
    ids=["object", "empty-array", "string", "number-name", "bad-json", "no-payload",
         "unknown-type", "connect-error", "ack-without-id", "ack-object"],
)
def test_sio_invalid_packet_closes(chat: Cluster, packet: str) -> None:
    """Sending and receiving data: "The payload is mandatory and MUST be a non-empty array. If
    that's not the case, then the receiver MUST close the connection." Likewise for packets
    that do not decode, types a client never sends, and ACKs without id or array payload."""
    ws, _ = ws_open(chat, ip(1, 7))
    try:
        ws.send("40")
        assert str(receive(ws)).startswith("40{")
        ws.send(packet)
        assert_ws_closed(ws)
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_sio_invalid_event_closes_polling(chat: Cluster, slot: int) -> None:
    """Sending and receiving data: an EVENT whose payload is not a non-empty array closes the
    connection (HTTP long-polling)."""
    client = Polling(chat, ip(slot, 8))
    client.connect_namespace()
    assert client.send("42[]").status_code == 200
    assert_polling_closed(client)


@pytest.mark.parametrize(
    "frames",
    [[b"\x01\x02"], ['451-["echo",{"_placeholder":true,"num":0}]', '42["echo","x"]']],
    ids=["attachment-without-packet", "text-instead-of-attachment"],
)
def test_sio_binary_attachments(chat: Cluster, frames: list[str | bytes]) -> None:
    """Packet encoding > Format: binary attachments follow the BINARY packet that announces
    them, and only then; anything else is a broken packet and closes the connection."""
    ws, _ = ws_open(chat, ip(0, 7))
    try:
        ws.send("40")
        assert str(receive(ws)).startswith("40{")
        for frame in frames:
            if isinstance(frame, bytes):
                ws.send_binary(frame)
            else:
                ws.send(frame)
        assert_ws_closed(ws)
    finally:
        ws.close()
