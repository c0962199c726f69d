"""Which worker slot serves a client, and what a slot holds while its worker is away.

The slot depends only on the client's IP address and the number of workers, through the crc32 of
the packed address (never Python's per-process randomised ``hash()``) fed to jump consistent
hash (Lamping & Veach, 2014), so every connection of one client, on every master restart and
every node with the same worker count, reaches the same slot; and when the count changes from N
to N+1 (``TTIN``, ``sioctl scale``) only the ~1/(N+1) of the addresses that the new slot takes
move, where ``crc32 % N`` moved ~N/(N+1) of them (docs/design.md, "Routing").
"""

from __future__ import annotations

import collections
import socket
import zlib
from typing import Any

from .worker_process import STOPPED, WorkerProcess


def slot_for_address(host: str, workers: int) -> int:
    """The slot (0 ≤ slot < workers) that serves clients from ``host`` (an IPv4 or IPv6 literal).

    IPv4-mapped IPv6 addresses (``::ffff:1.2.3.4``, as a dual-stack listener reports IPv4 peers)
    hash like the IPv4 address, so a client keeps its slot whichever listener it reaches. No
    address (a Unix socket's peer that named no client) is slot 0.
    """
    if not host:
        return 0
    if ":" in host:
        packed = socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
        if packed[:12] == b"\0" * 10 + b"\xff\xff":
            packed = packed[12:]
    else:
        packed = socket.inet_pton(socket.AF_INET, host)
    # crc32 is a fine key: jump_hash's LCG spreads it (measured: 10k addresses of one /16 fill
    # 5 slots within ±4%), at half the cost of a 64-bit digest on the accept path.
    return jump_hash(zlib.crc32(packed), workers)


_MASK64 = (1 << 64) - 1


def jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach's jump consistent hash: the bucket (0 ≤ bucket < ``buckets``) of the
    64-bit ``key``.

    Growing ``buckets`` by one moves a key only into the new bucket, and then only ~1/buckets
    of the keys; shrinking it by one moves only the keys of the bucket that goes. About
    ln(buckets) rounds of a 64-bit LCG; no table.
    """
    if buckets < 1:
        raise ValueError(f"jump_hash needs at least one bucket, not {buckets}")
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        key = (key * 2862933555777941757 + 1) & _MASK64
        candidate = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


class PendingQueue:
    """Client connections waiting for their slot's worker, oldest first, at most ``limit``.

    Holds (socket, address) pairs. ``push`` refuses past the bound so that the caller closes the
    connection and logs it: a slot whose worker is gone or stuck must not hold descriptors without
    end, because they are shared with every other slot through the process's open-file limit.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: collections.deque[tuple[socket.socket, tuple[str, int]]] = (
            collections.deque()
        )

    def __len__(self) -> int:
        return len(self._items)

    def push(self, conn: socket.socket, address: tuple[str, int]) -> bool:
        """Queue a connection; False (and nothing queued) when the queue is full."""
        if len(self._items) >= self.limit:
            return False
        self._items.append((conn, address))
        return True

    def requeue(self, items: list[tuple[socket.socket, tuple[str, int]]]) -> None:
        """Put connections back at the head of the queue, in their order, past the bound.

        For connections that were handed to a worker that died before reading them: they
        were accepted before anything waiting now, and closing them would lose them.
        """
        self._items.extendleft(reversed(items))

    def peek(self) -> tuple[socket.socket, tuple[str, int]]:
        return self._items[0]

    def pop(self) -> tuple[socket.socket, tuple[str, int]]:
        return self._items.popleft()

    def close_all(self) -> int:
        """Close every queued connection; returns how many there were."""
        count = len(self._items)
        while self._items:
            conn, _ = self._items.popleft()
            conn.close()
        return count


class Slot:
    """A worker position. Clients hash to a slot, not to a process, so a respawned or restarted
    worker serves the same clients."""

    def __init__(self, index: int, pending_limit: int) -> None:
        self.index = index
        self.worker: WorkerProcess | None = None
        # The replacement being started by a rolling restart, promoted once ready.
        self.standby: WorkerProcess | None = None
        self.pending = PendingQueue(pending_limit)
        self.restarts = 0
        self.quick_deaths = 0
        # When the next worker starts after a death (monotonic); None when none is due.
        self.respawn_at: float | None = None
        self.dropped = 0
        self.handoffs = 0
        self.last_drop_log = 0.0
        # Connections taken back from a dead worker's channel, unread, for the next worker.
        self.requeued = 0

    def describe(self) -> dict[str, Any]:
        """What status shows for the slot: its worker's figures and the slot's own."""
        info: dict[str, Any] = {
            "slot": self.index,
            "pid": None,
            "state": "backoff" if self.respawn_at is not None else STOPPED,
            "started_at": None,
            "connections": 0,
            "sessions": 0,
        }
        if self.worker is not None:
            info.update(self.worker.describe())
        info.update(
            restarts=self.restarts,
            pending=len(self.pending),
            dropped=self.dropped,
            handoffs=self.handoffs,
            standby_pid=self.standby.pid if self.standby is not None else None,
        )
        info.update(requeued=self.requeued)
        return info
