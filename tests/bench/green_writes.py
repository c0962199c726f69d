"""The timing loop the eventlet write-cost benchmarks share (http_write_cost.py,
ws_send_cost.py): writes to one end of a green socket pair while a green thread drains the
other."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import eventlet


def _drain(sock: Any) -> None:
    while sock.recv(65536):
        pass


def microseconds_per_write(ours: Any, peer: Any, write: Callable[[], None], count: int) -> float:
    """``write()`` called ``count`` times while a green thread drains ``peer``: microseconds
    per call. Both sockets are closed after."""
    reader = eventlet.spawn(_drain, peer)
    started = time.perf_counter()
    for _ in range(count):
        write()
    took = time.perf_counter() - started
    ours.shutdown(socket.SHUT_WR)
    reader.wait()
    ours.close()
    peer.close()
    return took / count * 1e6
