"""Peers of the master's small servers (control socket, metrics), each with a deadline.

Both servers run inside the master's selector loop: they accept without blocking, keep what
each peer has sent so far, and drop a peer that takes too long.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from typing import Generic, TypeVar


class Peer:
    """One accepted peer: its socket, its deadline, and what it has sent so far."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.deadline = time.monotonic() + timeout
        self.buffer = b""


P = TypeVar("P", bound=Peer)


class PeerTable(Generic[P]):
    """The peers of one listening socket, by file descriptor."""

    def __init__(self, listener: socket.socket, make: Callable[[socket.socket], P]) -> None:
        self.listener = listener
        self._make = make
        self.peers: dict[int, P] = {}

    def accept(self) -> socket.socket | None:
        """Accept one peer; returns its socket for the caller to watch, or None.

        Raises OSError (EMFILE...) for the caller to handle.
        """
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return None
        conn.setblocking(False)
        self.peers[conn.fileno()] = self._make(conn)
        return conn

    def get(self, conn: socket.socket) -> P | None:
        return self.peers.get(conn.fileno())

    def expired(self) -> list[socket.socket]:
        """Peers past their deadline."""
        now = time.monotonic()
        return [peer.sock for peer in self.peers.values() if peer.deadline < now]

    def forget(self, conn: socket.socket) -> None:
        self.peers.pop(conn.fileno(), None)
        conn.close()

    def close(self) -> None:
        """Close every peer and the listening socket."""
        for peer in list(self.peers.values()):
            with contextlib.suppress(OSError):
                peer.sock.close()
        self.peers.clear()
        self.listener.close()
