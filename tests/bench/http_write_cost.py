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
import socket
import time
import warnings
from typing import Any

warnings.simplefilter("ignore")  # eventlet's deprecation notice

import eventlet  # noqa: E402
from eventlet.green import socket as green_socket  # noqa: E402

from sioctl.worker.connection import StallLimitedWrites  # noqa: E402

WRITES = 100_000
ROUNDS = 5
PAYLOAD = b"x" * 200


def _drain(sock: Any) -> None:
    while sock.recv(65536):
        pass


class _Handler:
    """Stands in for the connection's handler, whose bound method the writer holds weakly."""

    def stalled(self) -> None:
        """Never called: the reader keeps up."""


def one_round(kind: str) -> float:
    """Microseconds per write and flush with the response file of ``kind``."""
    ours, peer = green_socket.socketpair()
    reader = eventlet.spawn(_drain, peer)
    handler = _Handler()
    wfile: Any = (ours.makefile("wb", 16 << 10) if kind == "eventlet" else
                  io.BufferedWriter(StallLimitedWrites(ours, 45.0, handler.stalled), 16 << 10))
    started = time.perf_counter()
    for _ in range(WRITES):
        wfile.write(PAYLOAD)
        wfile.flush()
    took = time.perf_counter() - started
    ours.shutdown(socket.SHUT_WR)
    reader.wait()
    ours.close()
    peer.close()
    return took / WRITES * 1e6


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
