"""python-socketio's check for binary data made cheaper (core: engine-free; each engine's worker
calls :func:`install` once at boot, beside ``json_codec.install``).

``socketio.packet.Packet.__init__`` asks ``data_is_binary(data)`` of every packet it builds with
data: each ack (``_handle_event_internal``), each emit (once per emit, not per recipient). The
library's check builds a list of every item's answer at every level and folds it with
``functools.reduce`` and a lambda: ~1.8 µs for an ack carrying a small dict (``timeit``), ~3%
of an asyncio worker's samples under an echo load (docs/benchmarks-optimizations.md, "Asyncio
dispatch, acks and broadcast"). :func:`data_is_binary` answers the same for every input (bytes
or a bytearray anywhere in nested lists and dict values; isinstance, so subclasses count as
the library counts them) and stops at the first binary item; ~0.55 µs for the same ack.

Only python-socketio's own ``Packet.data_is_binary`` is replaced: a packet class that defines
its own keeps it (:func:`install` sets the method on ``socketio.packet.Packet`` alone).
"""

from __future__ import annotations

from typing import Any

import socketio.packet

# Set on the replacement, so that a second install (a second server, a test) is a no-op.
_MARK = "_sioctl_binary_check"


def data_is_binary(data: Any) -> bool:
    """Whether ``data`` is or holds (in lists and dict values, at any depth) bytes or a
    bytearray: python-socketio's ``Packet.data_is_binary``'s answer."""
    kind = type(data)
    if kind is str or kind is int or kind is float or data is None or kind is bool:
        return False  # the common leaves first: no isinstance chain for them
    if isinstance(data, (bytes, bytearray)):
        return True
    if isinstance(data, list):
        for item in data:
            if data_is_binary(item):
                return True
        return False
    if isinstance(data, dict):
        for item in data.values():
            if data_is_binary(item):
                return True
        return False
    return False


def _classmethod_check(cls: Any, data: Any) -> bool:
    """:func:`data_is_binary`, in the shape of the library's classmethod."""
    return data_is_binary(data)


setattr(_classmethod_check, _MARK, True)


def install(packet_class: Any = socketio.packet.Packet) -> None:
    """Give ``packet_class`` (python-socketio's ``Packet``) :func:`data_is_binary` as its
    ``data_is_binary`` classmethod; once per process (later calls change nothing)."""
    current = packet_class.__dict__.get("data_is_binary")
    if not getattr(getattr(current, "__func__", None), _MARK, False):
        packet_class.data_is_binary = classmethod(_classmethod_check)
