"""CPU of the eventlet websocket's per-message read path, in one process (no network, no
cluster): the frame read through ``BufferedReads`` with eventlet's ``wait()`` against
``websocket_serve``'s generator-free reader, and an acquire + release of eventlet's
``Semaphore`` against ``connection.SendLock`` (docs/benchmarks-optimizations.md, "Eventlet
reader at a shallow stack").

    python tests/bench/ws_read_cost.py [--frames 20000] [--runs 3]

Each run reads ``--frames`` echo-sized text frames that a green thread writes to a socketpair in
bursts of 100; prints µs of process CPU per message (the writer's share included, the same for
both readers). Bounded by ``--frames`` and ``--runs``.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import websocket  # noqa: E402
from eventlet.semaphore import Semaphore  # noqa: E402
from eventlet.websocket import RFC6455WebSocket  # noqa: E402

from sioctl.worker import ws_reads  # noqa: E402
from sioctl.worker.connection import SendLock  # noqa: E402
from sioctl.worker.protocol.websocket_serve import eventlet_message_reader  # noqa: E402

FRAME = websocket.ABNF.create_frame('42["echo","hello"]', websocket.ABNF.OPCODE_TEXT).format()
BURST = 100
LOCK_ROUNDS = 200_000


def read_cost(frames: int, generator_free: bool) -> float:
    """µs of CPU per message read (``wait()``, or the generator-free reader)."""
    ours, theirs = socket.socketpair()
    ws = RFC6455WebSocket(ours, {}, 13)
    ws_reads.buffer_reads(ws)
    reader: Any = eventlet_message_reader(ws) if generator_free else None

    def feed() -> None:
        for _ in range(frames // BURST):
            theirs.sendall(FRAME * BURST)
            eventlet.sleep(0)

    eventlet.spawn(feed)
    started = time.process_time()
    for _ in range(frames // BURST * BURST):
        if reader is not None:
            reader(ws)
        else:
            ws.wait()
    spent = time.process_time() - started
    ours.close()
    theirs.close()
    return spent / frames * 1e6


def lock_cost(cls: Any) -> float:
    """µs of CPU per uncontended acquire + release."""
    lock = cls()
    started = time.process_time()
    for _ in range(LOCK_ROUNDS):
        lock.acquire()
        lock.release()
    return (time.process_time() - started) / LOCK_ROUNDS * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for run in range(1, args.runs + 1):
        print(f"run {run}: wait() {read_cost(args.frames, False):.2f} µs/msg, "
              f"generator-free {read_cost(args.frames, True):.2f} µs/msg; "
              f"Semaphore {lock_cost(Semaphore):.3f} µs, SendLock {lock_cost(SendLock):.3f} µs")


if __name__ == "__main__":
    main()
