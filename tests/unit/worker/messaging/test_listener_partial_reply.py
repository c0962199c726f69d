"""The eventlet shell's pub/sub listener reads a message whose reply arrives in parts.

redis-py 8 bounds the read of a pub/sub reply by ``get_message``'s own timeout (redis-py
#3982); the listener takes what Redis has sent already with a zero timeout, so a message that had
only partly arrived raised ``TimeoutError``: the subscription was dropped and what Redis sent
meanwhile lost (with hiredis as redis-py's parser, ``tests/bench/partial_reply_probe.py``).

The peer here is a real TCP server speaking RESP2, because only a peer that controls where a
reply is cut (one message whole, half of the next, the rest later) shows it every time; a real
redis-server cuts where the kernel does."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import redis

from sioctl.worker.messaging.listener import Listener

CHANNEL = "sioctl-test"
# How long the second message stays cut: far longer than a zero timeout, far shorter than POLL.
CUT_FOR = 0.3


def bulk(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def published(data: str) -> bytes:
    return b"*3\r\n" + bulk("message") + bulk(CHANNEL) + bulk(data)


class SplittingPeer:
    """Answers the client's commands (SUBSCRIBE with its confirmation, a PING once subscribed
    with a pub/sub pong, anything else +OK); on its first connection, once subscribed, sends a
    message whole and the next one cut in two, the rest ``CUT_FOR`` seconds later. Later
    connections (a client that gave up on the first) get no messages: it counts them."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections == 1),
                             daemon=True).start()

    def _serve(self, conn: socket.socket, first: bool) -> None:
        with conn:
            conn.settimeout(10)
            try:
                self._subscribed(conn)
                if first:
                    second = published("second:" + "x" * 1000)
                    conn.sendall(published("first") + second[:500])
                    time.sleep(CUT_FOR)
                    conn.sendall(second[500:])
                while True:  # until the client goes
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    if b"PING" in chunk.upper():
                        conn.sendall(b"*2\r\n" + bulk("pong") + bulk(""))
            except OSError:
                return

    def _subscribed(self, conn: socket.socket) -> None:
        """Answer the client's commands up to its SUBSCRIBE."""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                raise OSError("the client went")
            for command in chunk.split(b"*")[1:]:
                if b"SUBSCRIBE" in command.upper():
                    conn.sendall(b"*3\r\n" + bulk("subscribe") + bulk(CHANNEL) + b":1\r\n")
                    return
                conn.sendall(b"+OK\r\n")

    def close(self) -> None:
        self.server.close()


class Stop(BaseException):
    """Ends the listener's reconnect loop (which catches every Exception) in the test."""


def test_a_message_cut_across_reads_is_read_whole_and_the_subscription_kept() -> None:
    peer = SplittingPeer()
    got: list[tuple[str, bytes]] = []
    lost: list[BaseException] = []

    def connect() -> Any:
        return redis.Redis(host="127.0.0.1", port=peer.port, protocol=2)

    listener = Listener(connect, [CHANNEL], time.sleep, logging.getLogger("sioctl.test"))
    original = listener._lost
    assert original is not None

    def counting_lost(exc: BaseException) -> Any:
        lost.append(exc)
        original(exc)  # its log line, as in a worker
        raise Stop from exc  # no reconnect: the peer serves one connection

    listener._lost = counting_lost  # type: ignore[method-assign]

    def read() -> None:
        try:
            for channel, data in listener.messages():
                got.append((channel, data))
                if len(got) == 2:
                    return
        except Stop:
            return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=5 + CUT_FOR)
    try:
        assert lost == []
        assert [data[:7] for _, data in got] == [b"first", b"second:"]
        assert got[1][1] == b"second:" + b"x" * 1000
        assert peer.connections == 1
    finally:
        conn = listener._conn
        if conn is not None:
            conn.close()
        peer.close()
