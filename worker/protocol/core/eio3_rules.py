"""Engine.IO protocol 3 (Socket.IO v2 clients) as decisions over plain values (core; the
shells are ``worker/protocol/eio3_handshake.py``, the door, and ``worker/protocol/eio3.py``,
the session).

Sections are named "v3 > ..." after revision 3 of the protocol (socketio/socket.io,
docs/engine.io-protocol/v3.md). The framing itself is :mod:`.eio3_payload`.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlencode

from engineio import packet

from . import eio3_payload
from .eio_rules import InvalidPacket, decode_packet

PROTOCOL = "3"
# What a client sends on each transport: in v3 the client pings and the server pongs
# (v3 > Encoding > 2 ping, 3 pong), the opposite of v4.
CLIENT_POLLING_TYPES = frozenset({packet.CLOSE, packet.PING, packet.MESSAGE})
CLIENT_WEBSOCKET_TYPES = frozenset({packet.CLOSE, packet.PING, packet.MESSAGE, packet.UPGRADE})
REFUSAL = (
    "Engine.IO protocol 3 (EIO=3, Socket.IO v2 clients) is not enabled on this server; "
    "start it with --allow-eio3 (SIOCTL_ALLOW_EIO3=1) to serve them"
)


class WebsocketEncoding(Protocol):
    """What an :class:`Eio3Packet` reads at encoding time: whether the session's websocket
    asked for binary as base64 (an ``Eio3Session``)."""

    websocket_b64: bool


# ---------------------------------------------------------------------- the handshake's door
def wants_eio3(query: dict[str, list[str]]) -> bool:
    """Whether a request (its parsed query) opens an Engine.IO protocol 3 session."""
    return "sid" not in query and query.get("EIO") == [PROTOCOL]


def as_eio4_query(query: dict[str, list[str]]) -> str:
    """The query string of an EIO=3 handshake as python-engineio 4's checks accept it: the
    same with ``EIO=4`` (it refuses any other version first thing)."""
    return urlencode({**query, "EIO": ["4"]}, doseq=True)


def binary_as_base64(query: dict[str, list[str]], jsonp: bool) -> tuple[bool, bool]:
    """Whether a v3 session's polling responses, and its websocket, carry binary as base64:
    v3 > URLs, "b64=1 ... to signal the server that all binary data should be sent base64
    encoded"; a JSONP client cannot take binary at all."""
    return ("b64" in query or jsonp, "b64" in query)


# ---------------------------------------------------------------------- the session
def open_data(data: dict[str, Any]) -> dict[str, Any]:
    """The OPEN packet's data for v3 > Anatomy of an Engine.IO session: sid, upgrades,
    pingInterval and pingTimeout (maxPayload came with v4)."""
    return {key: value for key, value in data.items() if key != "maxPayload"}


def answer_to(pkt: packet.Packet) -> packet.Packet | None:
    """The packet a v3 server answers a client's packet with at once, or None: v3 > 2 ping,
    "Server should answer with a pong packet containing the same data"."""
    if pkt.packet_type == packet.PING:
        return packet.Packet(packet.PONG, pkt.data)
    return None


def silent_too_long(now: float, last_received: float, interval_ms: int,
                    ping_timeout: float) -> bool:
    """v3 > Timeouts: the server considers the client gone when it "does not receive any data
    within pingTimeout + pingInterval" (any packet counts; the interval as advertised)."""
    return now - last_received > interval_ms / 1000 + ping_timeout


def check_websocket_frame(frame: str | bytes) -> str | bytes:
    """The frame in the form python-engineio reads (v4): a binary message as bare bytes. v3
    binary frames lead with their type byte (v3 > Packet); text ones are as in v4, except that
    ``b<type><base64>`` may carry binary. Raises :class:`InvalidPacket`."""
    if isinstance(frame, (bytes, bytearray)) or frame.startswith("b"):
        data = eio3_payload.decode_packet_v3(frame).data
        return bytes(data)
    pkt = decode_packet(frame)
    if pkt.packet_type not in CLIENT_WEBSOCKET_TYPES:
        raise InvalidPacket(f"packet type {pkt.packet_type} may not be sent here")
    return frame


def decode_post_body(raw: bytes, content_type: str, jsonp: bool) -> list[packet.Packet]:
    """The packets of a v3 POST body, each of a type a client may send over polling; raises
    :class:`InvalidPacket`."""
    packets = eio3_payload.decode_post_body(raw, content_type, jsonp=jsonp)
    for pkt in packets:
        if pkt.packet_type not in CLIENT_POLLING_TYPES:
            raise InvalidPacket(f"packet type {pkt.packet_type} may not be sent by a client")
    return packets


def jsonp_index(query: dict[str, list[str]]) -> int | None:
    """The JSONP index ``j`` of a request, or None (python-engineio has refused a bad one)."""
    try:
        return int(query["j"][0])
    except (KeyError, IndexError, ValueError):
        return None


def polling_response(packets: list[packet.Packet], b64: bool, jsonp: int | None,
                     headers: list[Any] | None = None) -> dict[str, Any]:
    """The response dict (python-engineio's shape: status, headers, response) of a polling
    GET carrying ``packets``, framed the v3 way."""
    body, content_type = eio3_payload.encode_response(packets, b64, jsonp)
    return {
        "status": "200 OK",
        "headers": (headers or []) + [("Content-Type", content_type)],
        "response": body,
    }


class Eio3Packet(packet.Packet):
    """A packet queued for a v3 session, encoded the v3 way when python-engineio's websocket
    writer asks (``pkt.encode()``). A copy of what was sent: python-socketio sends the same
    packet object to every session, and python-engineio caches its (v4) encoding on it."""

    def __init__(self, pkt: packet.Packet, session: WebsocketEncoding) -> None:
        super().__init__(pkt.packet_type, pkt.data)
        self._session = session

    def encode(self, b64: bool = False) -> Any:
        return eio3_payload.encode_packet(self, b64 or self._session.websocket_b64)
