"""An idle websocket, on both engines: what the memory diet of an idle session (issue 19) relies
on and must keep. Once a websocket is open the worker lets go of what only HTTP needed (on
eventlet, eventlet.wsgi's read and write buffers): the session must still be pinged, answer,
receive emits, be timed out when silent, come from an upgraded polling session, and end
cleanly when its worker is replaced. Real clusters (tests/apps/fastping.py: a 0.3 s ping
interval, 1 s ping timeout), raw websocket clients and python-socketio clients.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest
import websocket

from tests.support.clients import (
    SOURCE_IPS,
    open_session,
    try_whoami,
    wait_for_upgrade,
    wait_until,
    whoami,
)
from tests.support.cluster import ENGINES, app_on
from tests.support.conformance import assert_gone_and_another_served

# Frames a test reads before giving up: several ping intervals' worth, bounded.
MAX_FRAMES = 200


def read_until(ws: websocket.WebSocket, wanted: str, answer_pings: bool = True) -> int:
    """Read frames until ``wanted`` arrives, answering each ping (``2``) with a pong (``3``);
    returns how many pings came first."""
    pings = 0
    for _ in range(MAX_FRAMES):
        frame = ws.recv()
        if frame == wanted:
            return pings
        if frame == "2":
            pings += 1
            if answer_pings:
                ws.send("3")
    raise AssertionError(f"{wanted!r} did not arrive within {MAX_FRAMES} frames")


def closed_by_server(ws: websocket.WebSocket) -> bool:
    """Whether the server ends ``ws`` (a close frame or the end of the stream) before
    MAX_FRAMES frames; pings are read and not answered."""
    for _ in range(MAX_FRAMES):
        try:
            opcode, _ = ws.recv_data(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return True
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return True
    return False


@pytest.mark.parametrize("engine", ENGINES)
def test_an_idle_websocket_is_pinged_gets_emits_and_a_silent_one_is_timed_out(
    start_cluster: Any, connect: Any, engine: str
) -> None:
    cluster = start_cluster(app=app_on(engine, "tests.apps.fastping:sio"), workers=1)
    idle = open_session(cluster.port, SOURCE_IPS[0])
    silent = open_session(cluster.port, SOURCE_IPS[1])
    try:
        # Idle for several ping intervals: pinged each time, and kept while it answers.
        pings = 0
        while pings < 4:
            pings += read_until(idle, "2") + 1
            idle.send("3")
        # An emit from another session reaches the idle one.
        other = connect(cluster, SOURCE_IPS[2], ("websocket",))
        assert other.call("shout", "hello", timeout=10) is True
        read_until(idle, '42["shouted","hello"]')
        other.disconnect()
        # The silent one never answered a ping: the server closed it (after pingInterval +
        # pingTimeout), and its worker holds one session fewer.
        silent.settimeout(15)
        assert closed_by_server(silent)
        cluster.wait_for(lambda s: s["slots"][0]["sessions"] == 1, timeout=15.0,
                         what="the silent session forgotten")
        idle.send('42["echo","still here"]')
        read_until(idle, "2")  # still pinged after the other's timeout
    finally:
        idle.close()
        silent.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_polling_session_upgrades_idles_and_ends_when_its_worker_is_replaced(
    start_cluster: Any, connect: Any, engine: str
) -> None:
    cluster = start_cluster(app=app_on(engine, "tests.apps.fastping:sio"), workers=1)
    client = connect(cluster, SOURCE_IPS[3], ("polling", "websocket"))
    wait_for_upgrade(client)
    first = whoami(client)
    shouted = client.record("shouted")
    # Idle over the upgraded websocket for several ping intervals, then an emit.
    raw = open_session(cluster.port, SOURCE_IPS[4])
    try:
        pings = 0
        while pings < 4:
            pings += read_until(raw, "2") + 1
            raw.send("3")
        assert client.call("shout", "after idling", timeout=10) is True
        assert shouted.get(timeout=10) == "after idling"
        # HUP rolls the worker: the websocket ends (no hang), and the client reconnects
        # to the new worker.
        cluster.signal(signal.SIGHUP)
        raw.settimeout(30)
        assert closed_by_server(raw)
        wait_until(lambda: (try_whoami(client) or first)["pid"] != first["pid"], 60,
                   what="the client on the new worker")
    finally:
        raw.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_messages_sent_in_one_write_are_all_answered_and_the_websocket_idles_on(
    start_cluster: Any, engine: str
) -> None:
    """Twenty acknowledged events in one TCP write (the worker parses them from one read):
    each is answered; the websocket then idles, pinged, and answers again (asyncio reads
    them from the protocol's callbacks once the session is established)."""
    cluster = start_cluster(app=app_on(engine, "tests.apps.fastping:sio"), workers=1)
    ws = open_session(cluster.port, SOURCE_IPS[0])
    try:
        frames = [websocket.ABNF.create_frame(f'42{n}["echo","m{n}"]',
                                              websocket.ABNF.OPCODE_TEXT).format()
                  for n in range(20)]
        ws.sock.sendall(b"".join(frames))
        answers: set[str] = set()
        for _ in range(MAX_FRAMES):
            frame = ws.recv()
            if frame == "2":
                ws.send("3")
            else:
                answers.add(frame)
            if len(answers) == 20:
                break
        assert answers == {f'43{n}["m{n}"]' for n in range(20)}
        pings = 0
        while pings < 3:
            pings += read_until(ws, "2") + 1
            ws.send("3")
        ws.send('421["echo","again"]')
        read_until(ws, '431["again"]')
    finally:
        ws.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_an_oversized_frame_ends_the_websocket_and_its_session(
    start_cluster: Any, engine: str
) -> None:
    """A frame past max_http_buffer_size (1 MB) on an established websocket: the server ends
    the websocket and forgets the session; another session is served as before."""
    cluster = start_cluster(app=app_on(engine, "tests.apps.fastping:sio"), workers=1)
    ws = open_session(cluster.port, SOURCE_IPS[1])
    try:
        ws.send('42["echo","' + "x" * 1_100_000 + '"]')
        ws.settimeout(15)
        assert closed_by_server(ws)
    finally:
        ws.close()
    assert_gone_and_another_served(cluster, SOURCE_IPS[2], timeout=15.0,
                                   what="the oversized session forgotten")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_close_is_answered_and_its_session_forgotten(
    start_cluster: Any, engine: str
) -> None:
    """The client starts the close handshake on an idle, established websocket: the server
    answers with its close frame and forgets the session."""
    cluster = start_cluster(app=app_on(engine, "tests.apps.fastping:sio"), workers=1)
    ws = open_session(cluster.port, SOURCE_IPS[3])
    try:
        read_until(ws, "2")
        ws.send("3")
        cluster.wait_for(lambda s: s["slots"][0]["sessions"] == 1, timeout=15.0,
                         what="the session counted")
        ws.send_close(websocket.STATUS_NORMAL)
        ws.settimeout(15)
        answered = False
        for _ in range(MAX_FRAMES):
            try:
                opcode, _ = ws.recv_data(control_frame=True)
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                answered = True
                break
        assert answered, "the server did not answer the close frame"
    finally:
        ws.shutdown()
    cluster.wait_for(lambda s: s["slots"][0]["sessions"] == 0, timeout=15.0,
                     what="the closed session forgotten")
