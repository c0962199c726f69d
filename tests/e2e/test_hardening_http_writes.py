"""An HTTP response's writes against a client that stops reading them, on both engines (the
websocket's rule, worker/protocol/core/write_stall.py, applied to the connection's HTTP
writes: worker/connection.py's ``StallLimitedWrites`` on eventlet, worker/aio/write_stall.py's
watch on uvicorn's transport on asyncio).

The scenario is a long-polling GET whose response is far bigger than what the buffers on the way
hold (tests/apps/fastping.py: ping_interval + ping_timeout = 1.3 s; 40 broadcasts of 100 KB
queued for a polling session, blind POSTed pongs keeping it open meanwhile), asked for from a
socket with a small receive buffer: a client that reads nothing is dropped, one that reads
slowly gets the whole response.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from tests.support.clients import SOURCE_IPS, open_session, small_buffer_socket, wait_until
from tests.support.cluster import ENGINES, app_on
from tests.support.conformance import Polling, receive

DROPPED = "the client read nothing for 1.3s, dropping the connection"
BROADCASTS = 40
PAD = "z" * 100_000
SHOUTED = f'42["shouted","{PAD}"]'
# The slow reader's pace: a read of at most READ_SIZE bytes (the small receive buffer holds
# less), then a pause: the whole response (~4 MB) takes a few seconds.
READ_SIZE = 16384
READ_PAUSE = 0.005


def queue_broadcasts(cluster: Any, polling: Polling, shouter_ip: str) -> None:
    """BROADCASTS broadcasts of 100 KB queued for the polling session ``polling`` (connected to
    "/", no GET pending), sent by a websocket client from ``shouter_ip`` (closed once it has
    received them all: the polling session's queue holds them all too);
    the polling session sends a pong after each, unasked (fastping's 1 s ping timeout would
    otherwise close it meanwhile)."""
    shouter = open_session(cluster.port, shouter_ip)
    try:
        shouted = 0
        for n in range(BROADCASTS):
            shouter.send(f'42{n}["shout","{PAD}"]')
            for _ in range(200):  # until its ack; the broadcasts (via Redis) counted
                got = receive(shouter)
                shouted += got == SHOUTED
                if got == f"43{n}[true]":
                    break
            assert polling.send("3").status_code == 200
        for _ in range(200):  # the ack comes before the broadcast: every one delivered
            if shouted == BROADCASTS:
                break
            shouted += receive(shouter) == SHOUTED
        assert shouted == BROADCASTS
    finally:
        shouter.close()


def small_buffer_get(port: int, source_ip: str, sid: str) -> socket.socket:
    """A polling GET for session ``sid`` sent from ``source_ip`` over a socket with a small
    receive buffer (the caller reads it, or not, and closes it)."""
    return small_buffer_socket(
        port, source_ip, f"GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n\r\n".encode())


class SlowReader:
    """Reads ``sock`` at most READ_SIZE bytes at a time, with a pause before each read:
    slowly, but always making progress."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def more(self) -> None:
        time.sleep(READ_PAUSE)
        chunk = self.sock.recv(READ_SIZE)
        assert chunk, f"the connection ended early, {len(self.data)} bytes unconsumed"
        self.data += chunk

    def until(self, mark: bytes, limit: int = 1 << 20) -> bytes:
        """What comes before the next ``mark`` (consumed with it)."""
        for _ in range(limit):  # bounded: each read brings at least a byte
            if mark in self.data:
                break
            self.more()
        line, _, self.data = self.data.partition(mark)
        return line

    def exactly(self, size: int) -> bytes:
        for _ in range(size):  # bounded: each read brings at least a byte
            if len(self.data) >= size:
                break
            self.more()
        got, self.data = self.data[:size], self.data[size:]
        assert len(got) == size, f"{len(got)} bytes of {size}"
        return got


def read_response(sock: socket.socket) -> bytes:
    """The body of the HTTP response on ``sock`` (Content-Length or chunked: eventlet.wsgi
    sends the one, uvicorn the other), read slowly (:class:`SlowReader`)."""
    reader = SlowReader(sock)
    head = reader.until(b"\r\n\r\n").decode("latin-1")
    assert head.startswith("HTTP/1.1 200"), head
    headers = {name.strip().lower(): value.strip() for name, _, value in
               (line.partition(":") for line in head.split("\r\n")[1:])}
    if "content-length" in headers:
        return reader.exactly(int(headers["content-length"]))
    assert headers.get("transfer-encoding") == "chunked", head
    parts = []
    for _ in range(1 << 20):  # bounded: each chunk brings at least a byte, the last ends it
        size = int(reader.until(b"\r\n"), 16)
        parts.append(reader.exactly(size))
        assert reader.exactly(2) == b"\r\n"
        if size == 0:
            break
    return b"".join(parts)


def long_poll_with_broadcasts_queued(start_cluster: Any, engine: str,
                                     ip: int) -> tuple[Any, Polling, socket.socket]:
    """A one-worker fastping cluster on ``engine``; a polling session from ``SOURCE_IPS[ip]``
    with ~4 MB of broadcasts queued for it (asked from ``SOURCE_IPS[ip + 1]``); and its GET
    sent over a socket with a small receive buffer, the response not read yet."""
    cluster = start_cluster(app=app_on(engine, "tests.apps.fastping:sio"), workers=1)
    polling = Polling(cluster, SOURCE_IPS[ip])
    polling.connect_namespace()
    queue_broadcasts(cluster, polling, SOURCE_IPS[ip + 1])
    return cluster, polling, small_buffer_get(cluster.port, SOURCE_IPS[ip], polling.sid)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_long_poll_client_that_reads_nothing_is_dropped(start_cluster: Any,
                                                          engine: str) -> None:
    """The GET's response (~4 MB) is not read at all: once the worker's writes to it make no
    progress for ping_interval + ping_timeout (1.3 s) the connection is dropped (it stops being
    counted) and the worker says so once. Its writes used to wait for ever (eventlet: no socket
    timeout on the response's writes; asyncio: the transport's buffer never drained, nothing
    watching it): the session closed by the ping timeout, the connection kept, counted against
    the worker's connection limit, a drain waiting on it."""
    cluster, polling, sock = long_poll_with_broadcasts_queued(start_cluster, engine, 1)
    try:
        polling.http.close()  # only the GET's connection is left
        wait_until(lambda: DROPPED in cluster.log_text(), timeout=15.0,
                   what="the drop of the GET's connection logged")
        cluster.wait_for(lambda s: s["slots"][0]["connections"] == 0, timeout=15.0,
                         what="the connection of the client that reads nothing dropped")
        assert cluster.log_text().count(DROPPED) == 1
    finally:
        sock.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_slow_long_poll_client_gets_its_whole_response(start_cluster: Any,
                                                         engine: str) -> None:
    """The same GET read slowly (small reads with pauses: the whole ~4 MB takes longer than
    the 1.3 s span, but every wait for room in the socket is short): the client gets every
    broadcast, and nothing was dropped (progress starts a new wait)."""
    cluster, polling, sock = long_poll_with_broadcasts_queued(start_cluster, engine, 3)
    try:
        started = time.monotonic()
        body = read_response(sock)
        took = time.monotonic() - started
    finally:
        sock.close()
        polling.http.close()
    assert body.decode().split("\x1e").count(SHOUTED) == BROADCASTS
    assert DROPPED not in cluster.log_text()
    # Not a timing threshold on the worker: the test's own pace, which must outlast the span
    # for the test to show anything.
    assert took > 1.3, f"read in {took:.2f}s: the reader was not slow enough to test the rule"


def small_buffer_download(port: int, source_ip: str) -> socket.socket:
    """``GET /download`` (the app's own route, tests/apps/fastping.py's ``app``: 4 MB) sent
    from ``source_ip`` over a socket with a small receive buffer."""
    return small_buffer_socket(port, source_ip,
                               b"GET /download HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")


@pytest.mark.parametrize("engine", ENGINES)
def test_an_app_download_nobody_reads_is_dropped_and_a_slow_one_served(
        start_cluster: Any, engine: str) -> None:
    """The rule is the connection's, not Engine.IO's: a download from the app's own route
    that nobody reads is dropped (logged once, naming the route), one read slowly is served
    in full, both from one worker at the same time."""
    cluster = start_cluster(app=app_on(engine, "tests.apps.fastping:app"), workers=1)
    silent = small_buffer_download(cluster.port, SOURCE_IPS[5])
    try:
        slow = small_buffer_download(cluster.port, SOURCE_IPS[6])
        try:
            body = read_response(slow)
        finally:
            slow.close()
        assert body == b"d" * (64 * 64_000)
        wait_until(lambda: DROPPED in cluster.log_text(), timeout=15.0,
                   what="the drop of the unread download logged")
        cluster.wait_for(lambda s: s["slots"][0]["connections"] == 0, timeout=15.0,
                         what="the connection of the client that reads nothing dropped")
    finally:
        silent.close()
    assert cluster.log_text().count(DROPPED) == 1
    assert f"GET /download from {SOURCE_IPS[5]}: {DROPPED}" in cluster.log_text()
