"""A minimal Socket.IO v5 / Engine.IO v4 speaker over one websocket, for the benchmarks.

It costs far less CPU per message than python-socketio's threaded client, so the load generator
stays out of the way of what is measured. It connects from a chosen 127.x source address (the
master picks the worker from it), speaks the default namespace only, answers the server's pings
and understands events and acks; nothing else (no binary packets, no reconnects).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import websocket

# Engine.IO packet types (first character of a frame).
EIO_OPEN, EIO_CLOSE, EIO_PING, EIO_PONG, EIO_MESSAGE = "0", "1", "2", "3", "4"
# Socket.IO packet types (second character of an Engine.IO message).
SIO_CONNECT, SIO_EVENT, SIO_ACK, SIO_CONNECT_ERROR = "0", "2", "3", "4"


class RawClient:
    """One Socket.IO session on a websocket that leaves from ``source_ip``.

    ``sid`` is the Socket.IO session id the server gave (the id ``emit(to=...)`` takes).
    """

    def __init__(self, host: str, port: int, source_ip: str, timeout: float = 10.0) -> None:
        sock = socket.create_connection((host, port), timeout=timeout,
                                        source_address=(source_ip, 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        url = f"ws://{host}:{port}/socket.io/?EIO=4&transport=websocket"
        try:
            self.ws = websocket.create_connection(url, socket=sock, timeout=timeout)
        except BaseException:
            sock.close()
            raise
        self.next_ack = 0
        opening = self.ws.recv()
        if not isinstance(opening, str) or not opening.startswith(EIO_OPEN):
            self.close()
            raise ConnectionError(f"unexpected Engine.IO opening {opening!r}")
        self.ws.send(EIO_MESSAGE + SIO_CONNECT)
        reply = self._recv_packet(timeout)
        if reply is None or not reply.startswith(SIO_CONNECT):
            self.close()
            raise ConnectionError(f"namespace connect refused: {reply!r}")
        self.sid: str = json.loads(reply[1:])["sid"]

    def _recv_packet(self, timeout: float) -> str | None:
        """The next Socket.IO packet (an Engine.IO message without its '4'), answering pings on
        the way; None when nothing came within ``timeout`` seconds."""
        self.ws.settimeout(timeout)
        while True:
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                return None
            if not isinstance(frame, str) or not frame:
                continue
            if frame[0] == EIO_PING:
                self.ws.send(EIO_PONG + frame[1:])
            elif frame[0] == EIO_MESSAGE:
                return frame[1:]
            elif frame[0] == EIO_CLOSE:
                raise ConnectionError("the server closed the session")

    def next_event(self, timeout: float) -> tuple[str, Any] | None:
        """The next event as (name, first argument), or None after ``timeout`` seconds of
        silence. Other packets (acks, ...) are skipped."""
        packet = self._recv_packet(timeout)
        while packet is not None:
            if packet.startswith(SIO_EVENT):
                body = packet[1:]
                start = body.find("[")
                args = json.loads(body[start:])
                return args[0], (args[1] if len(args) > 1 else None)
            packet = self._recv_packet(timeout)
        return None

    def call(self, event: str, data: Any, timeout: float = 10.0) -> Any:
        """Emit ``event`` with ``data`` and return the first argument of the server's ack.

        Events that arrive meanwhile are dropped. Raises TimeoutError when no ack comes."""
        ack_id = self.next_ack
        self.next_ack += 1
        self.ws.send(EIO_MESSAGE + SIO_EVENT + str(ack_id) + json.dumps([event, data]))
        while True:
            packet = self._recv_packet(timeout)
            if packet is None:
                raise TimeoutError(f"no ack for {event!r} within {timeout:g}s")
            if packet.startswith(SIO_ACK):
                body = packet[1:]
                start = body.find("[")
                if body[:start] == str(ack_id):
                    args = json.loads(body[start:])
                    return args[0] if args else None

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for traffic, answering pings; drops what comes."""
        self._recv_packet(timeout)

    def close(self) -> None:
        """Close the session and the socket; never raises."""
        try:
            self.ws.close(timeout=1.0)
        except Exception:  # already gone: nothing left to release
            pass
