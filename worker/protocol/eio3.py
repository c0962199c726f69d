"""Engine.IO protocol 3 sessions (Socket.IO v2 clients), served beside v4 ones.

An :class:`Eio3Session` is a python-engineio session (same queue, same server, same socket.io
events) whose wire format and heartbeat follow revision 3 of the protocol (socketio/socket.io,
docs/engine.io-protocol/v3.md; sections named "v3 > ..."). :mod:`.eio3_handshake` opens them;
from then on every request of the session goes through python-engineio's request handling as
usual, and the session object decides how its packets are framed (:mod:`.eio3_payload`). The
Socket.IO protocol v4 differences are in :mod:`.sio_v4`.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

from engineio import exceptions, packet

from . import eio3_payload
from .engineio_rules import ConformantSocket, InvalidPacket, decode_packet
from .ping_interval import advertised_ping_interval

PROTOCOL = "3"
# What a client sends on each transport: in v3 the client pings and the server pongs
# (v3 > Encoding > 2 ping, 3 pong), the opposite of v4.
CLIENT_POLLING_TYPES = frozenset({packet.CLOSE, packet.PING, packet.MESSAGE})
CLIENT_WEBSOCKET_TYPES = frozenset({packet.CLOSE, packet.PING, packet.MESSAGE, packet.UPGRADE})


class Eio3Packet(packet.Packet):
    """A packet queued for a v3 session, encoded the v3 way when python-engineio's websocket
    writer asks (``pkt.encode()``). A copy of what was sent: python-socketio sends the same
    packet object to every session, and python-engineio caches its (v4) encoding on it."""

    def __init__(self, pkt: packet.Packet, session: Eio3Session) -> None:
        super().__init__(pkt.packet_type, pkt.data)
        self._session = session

    def encode(self, b64: bool = False) -> Any:
        return eio3_payload.encode_packet(self, b64 or self._session.websocket_b64)


class Eio3Session(ConformantSocket):
    """An Engine.IO session of protocol 3 (python-engineio's session, made one by
    :class:`.eio3_handshake.Eio3DoorMixin` as it is stored)."""

    # Whether polling responses carry binary as base64 (the handshake asked with b64=1).
    b64 = False
    # Whether the websocket asked for binary as base64 text frames (b64=1 on its URL).
    websocket_b64 = False
    last_received = 0.0

    def send(self, pkt: packet.Packet) -> None:
        if pkt.packet_type == packet.OPEN and isinstance(pkt.data, dict):
            # v3 > Anatomy of an Engine.IO session: the OPEN packet carries sid, upgrades,
            # pingInterval and pingTimeout (maxPayload came with v4).
            pkt = packet.Packet(packet.OPEN, {
                key: value for key, value in pkt.data.items() if key != "maxPayload"})
        super().send(Eio3Packet(pkt, self))

    def receive(self, pkt: packet.Packet) -> None:
        # v3 > Timeouts: the server considers the client gone when it "does not receive any
        # data within pingTimeout + pingInterval"; any packet counts.
        self.last_received = time.monotonic()
        if pkt.packet_type == packet.PING:
            # v3 > 2 ping: "Server should answer with a pong packet containing the same data".
            self.send(packet.Packet(packet.PONG, pkt.data))
            return
        super().receive(pkt)

    def schedule_ping(self) -> None:
        """v3 > Timeouts: the client sends the pings; the server never does."""

    def check_ping_timeout(self) -> bool:
        """Close the session when the client sent nothing for pingInterval + pingTimeout
        (v3 > Timeouts); python-engineio's service task asks every session regularly."""
        if self.closed:
            raise exceptions.SocketIsClosedError()
        limit = advertised_ping_interval(self.server) / 1000 + self.server.ping_timeout
        if time.monotonic() - self.last_received > limit:
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

    def polling_response(
        self, packets: list[packet.Packet], jsonp: int | None, headers: list[Any] | None = None
    ) -> dict[str, Any]:
        """The response python-engineio sends for a GET: ``packets`` framed the v3 way."""
        body, content_type = eio3_payload.encode_response(packets, self.b64, jsonp)
        return {
            "status": "200 OK",
            "headers": (headers or []) + [("Content-Type", content_type)],
            "response": body,
        }

    def decode_post_body(self, raw: bytes, environ: dict[str, Any]) -> list[packet.Packet]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        packets = eio3_payload.decode_post_body(
            raw, environ.get("CONTENT_TYPE", ""), jsonp=jsonp_index(query) is not None
        )
        for pkt in packets:
            if pkt.packet_type not in CLIENT_POLLING_TYPES:
                raise InvalidPacket(f"packet type {pkt.packet_type} may not be sent by a client")
        return packets

    def check_websocket_frame(self, frame: str | bytes) -> str | bytes:
        """The frame in the form python-engineio reads (v4): a binary message as bare bytes.
        v3 binary frames lead with their type byte (v3 > Packet); text ones are as in v4,
        except that ``b<type><base64>`` may carry binary."""
        if isinstance(frame, (bytes, bytearray)) or frame.startswith("b"):
            data = eio3_payload.decode_packet_v3(frame).data
            return bytes(data)
        pkt = decode_packet(frame)
        if pkt.packet_type not in CLIENT_WEBSOCKET_TYPES:
            raise InvalidPacket(f"packet type {pkt.packet_type} may not be sent here")
        return frame


def jsonp_index(query: dict[str, list[str]]) -> int | None:
    """The JSONP index ``j`` of a request, or None (python-engineio has refused a bad one)."""
    try:
        return int(query["j"][0])
    except (KeyError, IndexError, ValueError):
        return None
