"""Free TCP ports that no other test process hands out, for servers the tests start.

A port found free by binding port 0 and closing the socket stays free only until someone else
binds it: under pytest-xdist another worker's ``bind(0)`` or a client's outgoing connection (both
draw from the kernel's ephemeral range, 32768-60999 by default) can take it before the server the
test starts binds it. So the ports come from below the ephemeral range instead, from a block of
its own for each xdist worker (gw0, gw1, ...; a serial run counts as gw0), each one checked by
binding it and handed out once per process. A random start within the block keeps two suites
running at once on one machine (a serial and a parallel one, two checkouts) apart as well.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import socket
import threading

# Below the kernel's default ephemeral range (net.ipv4.ip_local_port_range = 32768 60999), so
# neither bind(0) nor connect() ever picks one of these by itself.
BASE_PORT = 20000
END_PORT = 32768
# Ports per xdist worker: 12 workers fit; a worker with a higher number wraps around.
BLOCK = 1000
BLOCKS = (END_PORT - BASE_PORT) // BLOCK


def _worker_index() -> int:
    """This process's xdist worker number (``PYTEST_XDIST_WORKER=gw3`` -> 3), 0 when serial."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = name[2:] if name.startswith("gw") else ""
    return int(digits) if digits.isdigit() else 0


class _PortBlock:
    """This process's block of ports, handed out in turn from a random start."""

    def __init__(self, index: int) -> None:
        self.first = BASE_PORT + (index % BLOCKS) * BLOCK
        start = random.randrange(BLOCK)
        self._offsets = itertools.cycle([*range(start, BLOCK), *range(start)])
        self._lock = threading.Lock()

    def next_port(self, host: str) -> int:
        """The next port of the block that ``host`` has free; OSError when none is."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with self._lock:
            for _ in range(BLOCK):
                port = self.first + next(self._offsets)
                with socket.socket(family, socket.SOCK_STREAM) as s:
                    try:
                        s.bind((host, port))
                    except OSError as exc:
                        if exc.errno == errno.EADDRINUSE:
                            continue
                        raise
                return port
        raise OSError(errno.EADDRINUSE, f"no free port in {self.first}-{self.first + BLOCK - 1}")


_blocks: dict[int, _PortBlock] = {}
_blocks_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now at ``host``, that no other test process (xdist worker)
    hands out and that no ``bind(0)`` or outgoing connection on the machine picks."""
    # Keyed by pid as well: a forked child must not repeat its parent's sequence.
    key = os.getpid()
    with _blocks_lock:
        block = _blocks.get(key)
        if block is None:
            block = _blocks[key] = _PortBlock(_worker_index())
    return block.next_port(host)
