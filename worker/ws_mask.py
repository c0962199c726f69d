"""Websocket frame unmasking at C speed, in place of eventlet's byte-at-a-time loop.

Every frame a client sends is masked (RFC 6455, section 5.3: octet i of the payload is XORed
with octet (i mod 4) of the masking key). eventlet's ``RFC6455WebSocket._apply_mask`` builds a
one-byte ``bytes`` object per payload byte and joins them, which costs about a microsecond per
byte: 60 ms of a worker's only thread for a 64 KiB message. XORing the payload as one big
integer gives the same bytes in a few microseconds. Nothing here imports eventlet;
:func:`install` is called by the worker after eventlet is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# The most unmasked in one XOR. The big-integer XOR makes about four temporary copies of what it
# works on, and eventlet hands over whatever one recv() returned (up to a whole frame): a 500 KB
# attachment cost ~2.5 MB of transient memory at once, which a worker's RSS keeps. A multiple
# of 4, so every piece starts at the same mask octet.
PIECE = 64 * 1024


def apply_mask(
    data: bytes, mask: Sequence[int], length: int | None = None, offset: int = 0
) -> bytes:
    """``data[:length]`` XORed with the 4-byte ``mask`` repeated, starting at mask octet
    ``offset % 4`` (eventlet's signature: a frame arrives in chunks, ``offset`` bytes in)."""
    if length is None:
        length = len(data)
    if length <= 0:
        return b""
    shift = offset % 4
    key = bytes(mask) if not shift else bytes(mask[shift:]) + bytes(mask[:shift])
    if length <= PIECE:
        stream = (key * (length // 4 + 1))[:length]
        payload = int.from_bytes(data[:length], "little") ^ int.from_bytes(stream, "little")
        return payload.to_bytes(length, "little")
    view = memoryview(data)
    stream = key * (PIECE // 4)
    out = bytearray(length)
    for start in range(0, length, PIECE):
        end = min(start + PIECE, length)
        out[start:end] = _xor(view[start:end], stream, end - start)
    return bytes(out)


def _xor(data: Any, stream: bytes, length: int) -> bytes:
    """The first ``length`` bytes of ``data`` XORed with those of ``stream``."""
    payload = int.from_bytes(data, "little") ^ int.from_bytes(stream[:length], "little")
    return payload.to_bytes(length, "little")


def install(websocket_class: Any) -> None:
    """Make ``websocket_class`` (eventlet's RFC6455WebSocket) unmask with :func:`apply_mask`."""
    websocket_class._apply_mask = staticmethod(apply_mask)
