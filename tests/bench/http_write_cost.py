"""The cost of one HTTP response write on the eventlet worker: eventlet.wsgi's response file
(a BufferedWriter over the socket's SocketIO) against sioctl's (a BufferedWriter over
worker/connection.py's StallLimitedWrites, which sets the socket's timeout around each send).

A green socketpair, a reader green thread draining the other end; WRITES writes of 200 bytes,
each flushed (what eventlet.wsgi does per response write); five rounds alternating the two.
Run through the benchmark lock:

    flock /tmp/sioctl-bench.lock .venv/bin/python tests/bench/http_write_cost.py
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from typing import Any

warnings.simplefilter("ignore")  # eventlet's deprecation notice

from eventlet.green import socket as green_socket  # noqa: E402

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from green_writes import microseconds_per_write  # noqa: E402

from sioctl.worker.connection import StallLimitedWrites  # noqa: E402

WRITES = 100_000
ROUNDS = 5
PAYLOAD = b"x" * 200


class _Handler:
    """Stands in for the connection's handler, whose bound method the writer holds weakly."""

    def stalled(self) -> None:
        """Never called: the reader keeps up."""


def one_round(kind: str) -> float:
    """Microseconds per write and flush with the response file of ``kind``."""
    ours, peer = green_socket.socketpair()
    handler = _Handler()
    wfile: Any = (ours.makefile("wb", 16 << 10) if kind == "eventlet" else
                  io.BufferedWriter(StallLimitedWrites(ours, 45.0, handler.stalled), 16 << 10))

    def write() -> None:
        wfile.write(PAYLOAD)
        wfile.flush()

    return microseconds_per_write(ours, peer, write, WRITES)


def main() -> None:
    results: dict[str, list[float]] = {"eventlet": [], "sioctl": []}
    for _ in range(ROUNDS):
        for kind, figures in results.items():
            figures.append(one_round(kind))
    for kind, figures in results.items():
        figures.sort()
        print(f"{kind}: median {figures[len(figures) // 2]:.3f} µs/write "
              f"(min {figures[0]:.3f}, max {figures[-1]:.3f})")


if __name__ == "__main__":
    main()
