"""An established websocket's reads against what a hostile or unlucky client sends, and its
writes against a client that stops reading them, on both engines (on asyncio the reads come
from uvicorn's protocol callbacks once the session is established: worker/protocol/
async_ws_reader.py; on eventlet from the reader green thread; the write rule is
worker/protocol/core/write_stall.py's).
Real clusters (the chat app and tests/apps/engine.py, default ping interval and timeout: a
session dropped within these tests' bounded waits was dropped by the read path, not by the
ping timeout; tests/apps/fastping.py where the ping timeout is part of the story) and raw
websocket clients writing frames as they like.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from tests.support.clients import SOURCE_IPS, open_session, small_buffer_socket, tls_wrapped
from tests.support.cluster import ENGINES, app_on
from tests.support.conformance import (
    assert_echoed,
    assert_gone_and_another_served,
    assert_ws_closed,
    open_websocket,
    receive,
)

# Messages sent in one TCP write behind a binary frame: the worker reads them from one read
# while the binary frame holds the reads (on asyncio a backlog of the reader's; an engine-only
# app's messages are handled in the protocol's callback), far more than Python's recursion
# limit would allow a reader that read each one a few calls deeper.
BURST = 2000


def frame(payload: str | bytes) -> bytes:
    """One masked client frame: text for a str, binary for bytes."""
    opcode = websocket.ABNF.OPCODE_TEXT if isinstance(payload, str) else \
        websocket.ABNF.OPCODE_BINARY
    return bytes(websocket.ABNF.create_frame(payload, opcode).format())


@pytest.mark.parametrize("engine", ENGINES)
def test_a_burst_behind_a_binary_frame_is_read_in_full(start_cluster: Any,
                                                       engine: str) -> None:
    """An Engine.IO app that echoes every message (tests/apps/engine.py): a binary message
    then BURST text messages in one TCP write, each echoed, in order. (On asyncio the reader
    read its backlog one call deeper per message handled in the callback: a RecursionError
    after ~330, the rest never handled and the reads left paused.)"""
    cluster = start_cluster(app=app_on(engine, "tests.apps.engine:app"), workers=1)
    ws = open_websocket(cluster, SOURCE_IPS[0], "EIO=4&transport=websocket", path="engine.io")
    try:
        assert receive(ws).startswith("0{")
        burst = [frame(b"\x00\x01\x02")] + [frame(f"4m{n}") for n in range(BURST)]
        ws.sock.sendall(b"".join(burst))
        echoed: list[str | bytes] = []
        for _ in range(BURST + 1):
            try:
                echoed.append(receive(ws))
            except (websocket.WebSocketException, OSError):
                break
        assert echoed == [b"\x00\x01\x02"] + [f"4m{n}" for n in range(BURST)]
        ws.send("4after")
        assert receive(ws) == "4after"
    finally:
        ws.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_requests_read_together_are_each_answered_in_order(start_cluster: Any,
                                                          engine: str) -> None:
    """Socket.IO requests with acks sent in one TCP write, read together by the worker (their
    handlers run as tasks of their own, python-socketio's async_handlers, on asyncio): each is
    answered once, in the order sent, with its own data; and so is the next one alone."""
    cluster = start_cluster(workers=1)
    ws = open_session(cluster.port, SOURCE_IPS[3])
    try:
        requests = [frame(f'42{n}["echo",{{"n":{n},"pad":"{"x" * n}"}}]') for n in range(1, 41)]
        ws.sock.sendall(b"".join(requests))
        answers = [receive(ws) for _ in requests]
        assert answers == [f'43{n}[{{"n":{n},"pad":"{"x" * n}"}}]' for n in range(1, 41)]
        ws.send('4241["echo","alone"]')
        assert receive(ws) == '4341["alone"]'
    finally:
        ws.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_an_invalid_packet_on_an_established_websocket_closes_its_session(
        start_cluster: Any, engine: str) -> None:
    """A packet a client may not send on an established websocket (a PING: the server pings
    in Engine.IO v4): the websocket is closed and so is the session, at once, as for any
    failed read; not only the websocket, leaving the session to the ping timeout (the asyncio
    reader took it for an upgrade's invalid probe). Another session is served as before."""
    cluster = start_cluster(workers=1)
    ws = open_session(cluster.port, SOURCE_IPS[1])
    try:
        cluster.wait_for(lambda s: s["slots"][0]["sessions"] == 1, timeout=15.0,
                         what="the session counted")
        ws.send("2")
        assert_ws_closed(ws)
    finally:
        ws.close()
    assert_gone_and_another_served(
        cluster, SOURCE_IPS[2], timeout=10.0,
        what="the session closed with its websocket (ping timeout: 45 s)")


@pytest.mark.parametrize("engine", ENGINES)
def test_an_invalid_event_on_an_established_websocket_closes_its_session(
        start_cluster: Any, engine: str) -> None:
    """A Socket.IO EVENT whose data is not a list (the asyncio reader gives EVENT messages to
    the session in the protocol's callback): the session is closed at once and its
    websocket with it; the events sent before it were answered; another session is served as
    before."""
    cluster = start_cluster(workers=1)
    ws = open_session(cluster.port, SOURCE_IPS[3])
    try:
        assert_echoed(ws, "before")
        ws.send('42{"not":"a list"}')
        assert_ws_closed(ws)
    finally:
        ws.close()
    assert_gone_and_another_served(cluster, SOURCE_IPS[4], timeout=10.0,
                                   what="the session closed with its websocket")


def small_buffer_session(port: int, source_ip: str,
                         certfile: str | None = None) -> tuple[socket.socket, Any]:
    """A websocket session in the default namespace from ``source_ip`` over a socket with a
    small receive buffer (what the worker writes backs up soon once the client stops
    reading), over TLS trusting ``certfile`` when it is given; its socket (the caller closes
    it; with TLS the ``SSLSocket``, whose reads are the plain frames) and its websocket."""
    sock = tls_wrapped(small_buffer_socket(port, source_ip), certfile)
    try:
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
            socket=sock, timeout=10)
        assert ws.recv().startswith("0")
        ws.send("40")
        assert ws.recv().startswith("40")
    except BaseException:
        sock.close()
        raise
    return sock, ws


def counted(connections: int, *alive: Any) -> Callable[[dict[str, Any]], bool]:
    """A status predicate: the worker counts ``connections``; each time it is asked, the
    websockets ``alive`` send a pong, unasked (fastping's 1 s ping timeout would otherwise
    close their sessions while the status catches up, about once a second)."""
    def check(status: dict[str, Any]) -> bool:
        for ws in alive:
            ws.send("3")
        return bool(status["slots"][0]["connections"] == connections)
    return check


def shout(shouter: Any, pad: str, count: int,
          after_each: Callable[[], None] | None = None) -> tuple[int, int]:
    """``count`` broadcasts of ``pad`` sent by ``shouter`` (tests/apps/fastping.py's
    ``shout``), one at a time, each once the last was acked (``after_each`` called then): the
    acks and the broadcasts ``shouter`` itself received."""
    message = f'42["shouted","{pad}"]'
    acked, shouted = 0, 0
    for n in range(count):
        shouter.send(f'42{n}["shout","{pad}"]')
        for _ in range(200):  # until its ack; broadcasts (via Redis) counted
            got = receive(shouter)
            shouted += got == message
            if got == f"43{n}[true]":
                acked += 1
                break
        if after_each is not None:
            after_each()
    for _ in range(200):  # the ack comes before the broadcast
        if shouted == count:
            break
        shouted += receive(shouter) == message
    return acked, shouted


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_that_stops_reading_is_dropped(
        start_cluster: Any, engine: str, tls: bool, request: pytest.FixtureRequest) -> None:
    """A client (small receive buffer) that sends echo events of 100 KB and reads none of
    the answers: once the worker's writes to it are not taken for ping_interval +
    ping_timeout (tests/apps/fastping.py: 1.3 s) its connection is dropped and its session
    closed. The writers waited for ever (asyncio: for the transport to drain; eventlet: in
    the green socket's ``sendall``, no time limit since the reads took the socket timeout
    over): the session closed by the ping timeout, but the connection and its buffers kept,
    counted against the worker's connection limit, a drain waiting on it. Over plain TCP and
    over TLS (--certfile: what waits is then encrypted records, in the TLS layer's buffers
    and the kernel's)."""
    certfile, keyfile = request.getfixturevalue("certificate") if tls else (None, None)
    tls_args = ["--certfile", certfile, "--keyfile", keyfile] if tls else []
    cluster = start_cluster(app=app_on(engine, "tests.apps.fastping:sio"), workers=1,
                            extra_args=tls_args)
    sock, ws = small_buffer_session(cluster.port, SOURCE_IPS[3], certfile)
    try:
        cluster.wait_for(counted(1, ws), timeout=15.0, what="the websocket counted")
        pad = "x" * 100_000
        for n in range(40):  # 4 MB of answers, far past what the buffers on the way hold
            try:
                ws.send(f'42{n}["echo","{pad}"]')
            except (websocket.WebSocketException, OSError):
                break  # the worker dropped it already
        cluster.wait_for(lambda s: s["slots"][0]["connections"] == 0, timeout=15.0,
                         what="the connection of the client that reads nothing dropped")
        assert cluster.status()["slots"][0]["sessions"] == 0
    finally:
        sock.close()


@contextlib.contextmanager
def shouter_beside(cluster: Any, reader: Any, source_ip: str,
                   certfile: str | None = None) -> Iterator[websocket.WebSocket]:
    """A second websocket session from ``source_ip`` (the one that asks for the broadcasts;
    over TLS trusting ``certfile`` when it is given), once the worker counts it and
    ``reader``'s; closed on leaving."""
    shouter = open_session(cluster.port, source_ip, certfile)
    try:
        cluster.wait_for(counted(2, reader, shouter), timeout=15.0,
                         what="both websockets counted")
        yield shouter
    finally:
        shouter.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_that_reads_no_broadcast_is_dropped(start_cluster: Any, engine: str) -> None:
    """A client (small receive buffer) that reads nothing once connected while another
    client's broadcasts of 100 KB reach it (the fan-out's path: its frames straight to the
    socket while it takes them, the rest queued for the writer), and that sends a pong after
    each (unasked: its session is not closed by the ping timeout meanwhile): its connection
    is dropped once the writes to it are not taken for ping_interval + ping_timeout (1.3 s),
    and the
    worker goes on serving the client that broadcasts (every broadcast and ack reaches it)
    and a new one."""
    cluster = start_cluster(app=app_on(engine, "tests.apps.fastping:sio"), workers=1)
    sock, silent = small_buffer_session(cluster.port, SOURCE_IPS[4])
    try:
        with shouter_beside(cluster, silent, SOURCE_IPS[5]) as shouter:
            def pong() -> None:
                try:
                    silent.send("3")  # a pong unread pings ask for: the session lives on
                except (websocket.WebSocketException, OSError):
                    pass  # the worker dropped it already

            # 4 MB to the silent client, one broadcast at a time
            assert shout(shouter, "y" * 100_000, 40, pong) == (40, 40)
        cluster.wait_for(lambda s: s["slots"][0]["connections"] == 0, timeout=15.0,
                         what="the connection of the client that reads nothing dropped")
    finally:
        sock.close()
    assert_gone_and_another_served(cluster, SOURCE_IPS[6], timeout=15.0,
                                   what="both sessions closed")


# The steady reader's pace: one read of at most STEADY_READ bytes (the small receive buffer
# holds about that) every STEADY_PAUSE seconds, a few hundred KB a second at most: less in a
# span (1.3 s) than the worker's kernel must see read before it wakes a writer waiting for
# room (1 MB of the 4 MB a send buffer grows to on loopback): only the kernel's send queue
# shows that this client reads.
STEADY_READ = 4096
STEADY_PAUSE = 0.01
# A pong written by the client (masked, unasked): its session is not closed by the ping
# timeout while the pings wait behind megabytes of broadcasts.
PONG = frame("3")


class SteadyReader:
    """Reads ``sock`` (a websocket's socket, past its handshake) at STEADY_PAUSE intervals,
    STEADY_READ bytes at a time, and counts the frames whose payload is ``message`` (the
    server's frames are not masked: the payload is in the stream as it is); a pong after
    every tenth read. Run in a thread of its own (:meth:`run`, bounded in reads and time)."""

    def __init__(self, sock: socket.socket, message: str, expected: int) -> None:
        self.sock = sock
        self.mark = message.encode()
        self.expected = expected
        self.seen = 0
        self.ended = ""  # why the reads ended early ("" while they have not)

    def run(self, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        tail = b""
        for n in range(100_000):  # bounded: 400 MB at most, far more than is sent
            if self.seen >= self.expected or time.monotonic() > deadline:
                return
            time.sleep(STEADY_PAUSE)
            try:
                chunk = self.sock.recv(STEADY_READ)
                if n % 10 == 0:
                    self.sock.sendall(PONG)
            except OSError as exc:
                self.ended = repr(exc)
                return
            if not chunk:
                self.ended = "the connection ended"
                return
            tail += chunk
            self.seen += tail.count(self.mark)
            cut = tail.rfind(self.mark)
            tail = tail[cut + len(self.mark):] if cut >= 0 else tail
            tail = tail[-len(self.mark):]  # a mark cut across reads is counted once whole


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_that_reads_broadcasts_slowly_gets_them_all(
        start_cluster: Any, engine: str, tls: bool, request: pytest.FixtureRequest) -> None:
    """A client (small receive buffer) that reads steadily but slowly (:class:`SteadyReader`:
    a few KB every 10 ms) while another client's 40 broadcasts of 100 KB are queued for it: it
    gets every one and stays connected. Its reads make the worker's kernel send queue shrink
    all the time, but too little in a span to wake a writer waiting for room (Linux wakes it
    once 1 MB of a 4 MB send buffer is free): the eventlet writer, which took a wait that
    ended without room for a stall, dropped it as one that reads nothing. Over plain TCP and
    over TLS (--certfile: the workers write through ``SSLSocket.send``, whose records the
    reader's TLS layer takes from the kernel a record at a time)."""
    certfile, keyfile = request.getfixturevalue("certificate") if tls else (None, None)
    tls_args = ["--certfile", certfile, "--keyfile", keyfile] if tls else []
    cluster = start_cluster(app=app_on(engine, "tests.apps.fastping:sio"), workers=1,
                            extra_args=tls_args)
    sock, steady = small_buffer_session(cluster.port, SOURCE_IPS[1], certfile)
    try:
        # The shouter is closed once it has shouted: it answers no ping while the steady
        # reader reads.
        with shouter_beside(cluster, steady, SOURCE_IPS[2], certfile) as shouter:
            pad = "s" * 100_000
            shouted_message = f'42["shouted","{pad}"]'
            reader = SteadyReader(sock, shouted_message, 40)
            thread = threading.Thread(target=reader.run, daemon=True)
            started = time.monotonic()
            thread.start()
            # 4 MB to the steady reader, one broadcast at a time
            assert shout(shouter, pad, 40) == (40, 40)
        thread.join(timeout=90.0)
        took = time.monotonic() - started
        assert not thread.is_alive(), "the steady reader did not finish"
        assert (reader.seen, reader.ended) == (40, "")
        cluster.wait_for(counted(1, steady), timeout=15.0,
                         what="the steady reader's websocket still counted, alone")
    finally:
        sock.close()
    # Not a timing threshold on the worker: the test's own pace, which must outlast the span
    # for the test to show anything.
    assert took > 1.3, f"read in {took:.2f}s: the reader was not slow enough to test the rule"
