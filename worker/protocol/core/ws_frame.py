"""A broadcast's websocket frame, encoded once (issue 19, the broadcast write path).

python-socketio encodes a room emit or a broadcast once (one Socket.IO packet, one Engine.IO
packet object handed to every recipient, whose ``encode()`` python-engineio caches), but every
websocket session then frames it again on its own (eventlet's and websockets' ``send`` build
the RFC 6455 header and copy the payload for each socket). :func:`shared_frame` builds the
server-to-client frame once and keeps it on the packet object, so every session of the
fan-out writes the same bytes.

:func:`can_write_now` is the rule for writing those bytes straight to a session's socket
instead of through python-engineio's queue and writer: only a websocket session past its
upgrade, open, with nothing queued and no write of the writer under way (so the order of
what one socket receives is kept), on a plain (not compressed) websocket.

Engine-free: plain values in, bytes or a decision out.
"""

from __future__ import annotations

from typing import Any

from engineio import packet as eio_packet

# The attribute of a python-engineio Packet that holds its shared frame (bytes), once built.
FRAME_ATTRIBUTE = "_sioctl_ws_frame"
# First byte of an unfragmented server frame: FIN + text / binary opcode (RFC 6455, 5.2).
_TEXT = 0x81
_BINARY = 0x82


def frame(payload: bytes, binary: bool) -> bytes:
    """One unmasked, unfragmented RFC 6455 data frame (what a server sends) carrying
    ``payload``."""
    size = len(payload)
    first = _BINARY if binary else _TEXT
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + size.to_bytes(8, "big")
    return header + payload


def shared_frame(pkt: Any) -> bytes | None:
    """The websocket frame of Engine.IO v4 packet ``pkt``, built on first use and kept on the
    packet (python-socketio hands the same packet object to every recipient of an emit).
    None for what is not an Engine.IO packet (an EIO=3 session's own copy, a frame rest)."""
    if type(pkt) is not eio_packet.Packet:
        return None
    cached: bytes | None = pkt.__dict__.get(FRAME_ATTRIBUTE)
    if cached is None:
        cached = pkt.__dict__[FRAME_ATTRIBUTE] = packet_frame(pkt)
    return cached


def packet_frame(pkt: Any) -> bytes:
    """The websocket frame of Engine.IO v4 packet ``pkt`` (a ``engineio.packet.Packet``), not
    kept: what python-engineio's writer sends for it (text for a string encoding, binary for
    bytes)."""
    if pkt.binary:
        # Not through encode(): it would cache the raw bytes, which a polling recipient of the
        # same packet must get in base64 (see polling_packets).
        return frame(bytes(pkt.data), True)
    return frame(pkt.encode().encode("utf-8"), False)


def polling_packets(packets: list[Any]) -> list[Any]:
    """``packets`` as a long-poll may encode them: a binary packet whose encoding python-engineio
    has cached raw (a websocket recipient of the same emit encoded it first; ``encode(b64=
    True)`` then returns the cached bytes and the payload cannot be built: the GET failed with a
    500) is replaced by a fresh copy."""
    return [eio_packet.Packet(pkt.packet_type, pkt.data)
            if getattr(pkt, "binary", False) and isinstance(getattr(pkt, "encode_cache", None),
                                                             (bytes, bytearray))
            else pkt for pkt in packets]


def can_write_now(websocket_open: bool, upgrading: bool, closing: bool, queued: int,
                  writing: bool, compressed: bool) -> bool:
    """Whether a session may have a shared frame written straight to its socket now: its
    websocket is the transport (open, upgrade over), it is not closing, nothing is queued
    ahead (``queued`` packets) and its writer is not in the middle of a write (the order per
    socket is kept), and frames on it are not compressed (permessage-deflate frames differ
    per socket).

    The shells ask it once per recipient of every fan-out, so they spell it out inline
    (``ConformantSocket.write_frame``, ``AsyncSharedWrites.write_frame_now``): a change to
    the rule changes there too."""
    return (websocket_open and not upgrading and not closing and queued == 0 and not writing
            and not compressed)


class FrameRest:
    """What is left of a shared frame that the socket did not take at once: queued on the
    session like a packet, in order, and written as it is by the writer (``encode()`` returns
    the raw bytes, as :class:`RawFrame`)."""

    packet_type = eio_packet.MESSAGE
    data = None
    binary = True

    def __init__(self, rest: bytes) -> None:
        self.rest = RawFrame(rest)

    def encode(self, b64: bool = False) -> RawFrame:
        """The bytes still to write (already framed)."""
        return self.rest


class RawFrame(bytes):
    """Bytes that are already a websocket frame (or its end): the session's websocket writes
    them as they are instead of framing them."""
