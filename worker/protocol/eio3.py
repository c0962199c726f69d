"""Engine.IO protocol 3 sessions (Socket.IO v2 clients), served beside v4 ones (shell; the v3
rules are :mod:`.core.eio3_rules` and the framing :mod:`.core.eio3_payload`).

An :class:`Eio3Session` is a python-engineio session (same queue, same server, same socket.io
events) whose wire format and heartbeat follow revision 3 of the protocol (socketio/socket.io,
docs/engine.io-protocol/v3.md; sections named "v3 > ..."). :mod:`.eio3_handshake` opens them;
from then on every request of the session goes through python-engineio's request handling as
usual, and the session object decides how its packets are framed. The Socket.IO protocol v4
differences are in :mod:`.sio_v4`.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

from engineio import exceptions, packet

from .core import eio3_rules
from .core.eio3_rules import Eio3Packet, jsonp_index
from .engineio_rules import ConformantSocket
from .ping_interval import advertised_ping_interval


class Eio3SessionBase:
    """What a protocol-3 session is and does whatever its engine: its state and the plain
    (never awaited) methods both session classes share."""

    # Whether polling responses carry binary as base64 (the handshake asked with b64=1).
    b64 = False
    # Whether the websocket asked for binary as base64 text frames (b64=1 on its URL).
    websocket_b64 = False
    last_received = 0.0

    def polling_response(
        self, packets: list[packet.Packet], jsonp: int | None, headers: list[Any] | None = None
    ) -> dict[str, Any]:
        """The response python-engineio sends for a GET: ``packets`` framed the v3 way."""
        return eio3_rules.polling_response(packets, self.b64, jsonp, headers)

    def decode_post_body(self, raw: bytes, environ: dict[str, Any]) -> list[packet.Packet]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        return eio3_rules.decode_post_body(
            raw, environ.get("CONTENT_TYPE", ""), jsonp=jsonp_index(query) is not None)

    def check_websocket_frame(self, frame: str | bytes) -> str | bytes:
        """The frame in the form python-engineio reads (v4); see
        :func:`.core.eio3_rules.check_websocket_frame`."""
        return eio3_rules.check_websocket_frame(frame)

    def heard_from_client(self) -> None:
        """v3 > Timeouts: any packet from the client is a sign of life, unless it comes after
        pingInterval + pingTimeout of silence: then the session is over even if python-engineio's
        service task has not closed it yet (it runs when the loop lets it), and the request
        that brought the packet fails (SocketIsClosedError: a 400, or the websocket closes)."""
        now = time.monotonic()
        if self.last_received and eio3_rules.silent_too_long(
                now, self.last_received, advertised_ping_interval(self.server),  # type: ignore[attr-defined]
                self.server.ping_timeout):  # type: ignore[attr-defined]
            raise exceptions.SocketIsClosedError()
        self.last_received = now


class Eio3Session(Eio3SessionBase, ConformantSocket):
    """An Engine.IO session of protocol 3 (python-engineio's session, made one by
    :class:`.eio3_handshake.Eio3DoorMixin` as it is stored)."""

    def send(self, pkt: packet.Packet) -> None:
        if pkt.packet_type == packet.OPEN and isinstance(pkt.data, dict):
            pkt = packet.Packet(packet.OPEN, eio3_rules.open_data(pkt.data))
        super().send(Eio3Packet(pkt, self))

    def write_shared(self, pkt: packet.Packet) -> None:
        """A fan-out's packet: framed the v3 way, by this session (``send``)."""
        self.send(pkt)

    def write_frame(self, pkt: packet.Packet, frame: bytes | None, now: float,
                    log: bool) -> bool:
        """A fan-out's packet (the v4 ``frame`` is not for this session): as ``send``
        (queued: False)."""
        self.send(pkt)
        return False

    def receive(self, pkt: packet.Packet) -> None:
        self.heard_from_client()
        answer = eio3_rules.answer_to(pkt)
        if answer is not None:
            self.send(answer)
            return
        super().receive(pkt)

    def schedule_ping(self) -> None:
        """v3 > Timeouts: the client sends the pings; the server never does."""

    def check_ping_timeout(self) -> bool:
        """Close the session when the client sent nothing for pingInterval + pingTimeout
        (v3 > Timeouts); python-engineio's service task asks every session regularly."""
        if self.closed:
            raise exceptions.SocketIsClosedError()
        if eio3_rules.silent_too_long(time.monotonic(), self.last_received,
                                      advertised_ping_interval(self.server),
                                      self.server.ping_timeout):
            self.server.logger.info("%s: no ping from the EIO=3 client, closing", self.sid)
            self.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT)
            return False
        return True

    def poll(self) -> list[packet.Packet]:
        """The queued packets, waiting up to pingInterval + pingTimeout for one.

        A v4 poll always ends within a ping interval (the server's ping); here nothing may
        come, and python-engineio would close the session when the wait ends. An idle v3
        poll is answered with a noop instead: only the heartbeat decides that a client is gone.
        """
        try:
            packets: list[packet.Packet] = super().poll()
        except exceptions.QueueEmpty:
            return [packet.Packet(packet.NOOP)]
        return packets

    def handle_get_request(self, environ: dict[str, Any], start_response: Any) -> Any:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if query.get("transport") == ["websocket"]:
            self.websocket_b64 = "b64" in query
            return super().handle_get_request(environ, start_response)
        packets = super().handle_get_request(environ, start_response)
        return self.polling_response(packets, jsonp_index(query))
