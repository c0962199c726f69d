"""The channel between the master and one worker: a SOCK_SEQPACKET Unix socket pair.

Each datagram is one JSON object; a ``conn`` message carries exactly one file descriptor (the
accepted client connection) as SCM_RIGHTS ancillary data. SOCK_SEQPACKET keeps message boundaries,
so a message and its descriptor always arrive together, and the worker sees end-of-file as soon as
the master's end is closed (for instance because the master died).

The master also keeps a copy of the worker's end. It never reads it while the worker lives; once
the worker is dead, :func:`take_back` reads what the worker never read (each datagram with its
connection) so the master can hand those connections to the replacement. This costs nothing per
connection: no acknowledgement, no extra descriptor, one more descriptor per worker.

Master → worker:
    {"t": "conn", "addr": [host, port]}   + 1 fd: serve this client connection
Worker → master:
    {"t": "ready", "pid": N}              the app is loaded and the worker serves
    {"t": "boot_error", "message": "...", "frames": ["path:line in f: code", ...]}
                                          the worker cannot start; it exits with
                                          WORKER_BOOT_ERROR; frames: where the app raised it
    {"t": "stats", "connections": N, "sessions": M, "messaging": {...},
     "socketio": {"events": N, "emits": M}}
                                          heartbeat, about once a second; "messaging" holds
                                          the Redis figures when the worker has a Redis
"""

from __future__ import annotations

import array
import json
import os
import socket
from typing import Any

CONN = "conn"
READY = "ready"
BOOT_ERROR = "boot_error"
STATS = "stats"

# Plenty for any message above; a datagram longer than this is a protocol error.
MAX_MESSAGE = 65536
# Seconds between two ``stats`` messages of a worker.
HEARTBEAT_INTERVAL = 1.0


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, Any]:
    """Parse one datagram; raises ValueError if it is not a JSON object with a type."""
    message = json.loads(data)
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ValueError(f"not a channel message: {data[:100]!r}")
    return message


def take_back(worker_end: socket.socket) -> list[tuple[socket.socket, tuple[str, int]]]:
    """The client connections still unread at ``worker_end`` (a dead worker's end), oldest first,
    as (socket, (host, port)); anything else found there is closed and skipped.

    Only call this once the worker has exited: while it lives, the two readers would race.
    """
    found: list[tuple[socket.socket, tuple[str, int]]] = []
    while True:
        try:
            data, fds, flags = _receive_now(worker_end)
        except (BlockingIOError, ConnectionError):
            return found
        if not data and not fds:
            return found
        conn = None
        if len(fds) == 1 and not flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            try:
                message = decode(data)
                host, port = message["addr"]
                if message["t"] == CONN:
                    conn = socket.socket(fileno=fds[0])
                    found.append((conn, (str(host), int(port))))
            except (ValueError, KeyError, TypeError, OSError):
                conn = None
        if conn is None:
            for fd in fds:
                os.close(fd)


def _receive_now(sock: socket.socket, max_fds: int = 4) -> tuple[bytes, list[int], int]:
    """One datagram and its descriptors, or BlockingIOError if none is waiting.

    MSG_DONTWAIT, not setblocking: O_NONBLOCK would change the end the worker shares (still
    blocking when a worker died before eventlet wrapped it). Not socket.recv_fds: in Python
    3.11 it drops its flags argument (python/cpython#128881) and would wait on an empty end.
    """
    fds = array.array("i")
    data, ancillary, flags, _ = sock.recvmsg(
        MAX_MESSAGE, socket.CMSG_LEN(max_fds * fds.itemsize), socket.MSG_DONTWAIT
    )
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds), flags


def socketpair() -> tuple[socket.socket, socket.socket]:
    """A (master_end, worker_end) pair; the master's end is non-blocking, the worker's inheritable.

    Both ends are created close-on-exec; the worker's end is made inheritable only for the child
    that is spawned with it, so no other process keeps a copy (which would hide the master's death).
    """
    master_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    master_end.setblocking(False)
    return master_end, worker_end
