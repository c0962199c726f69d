"""The master's control socket: one JSON line in, one JSON line out.

The socket lives in the cluster's run directory (mode 0700) and is itself mode 0600, so only the
user who started the cluster can ask for its status or stop it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable
from typing import Any

from .peers import Peer, PeerTable

MAX_REQUEST = 65536
# A client that connects and says nothing is dropped after this long.
REQUEST_TIMEOUT = 5.0


class ControlError(Exception):
    """Nobody answered on the control socket, or the answer was not understood."""


def request(path: str, command: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send ``command`` to the master listening on ``path``; returns its JSON reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(json.dumps(command).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise ControlError(f"no answer on {path}: {exc.strerror or exc}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(f"unreadable answer on {path}: {data[:100]!r}") from None
    if not isinstance(reply, dict):
        raise ControlError(f"unreadable answer on {path}: {data[:100]!r}")
    return reply


def is_answering(path: str) -> bool:
    """True when a live master answers on ``path``."""
    try:
        request(path, {"cmd": "ping"}, timeout=2.0)
    except ControlError:
        return False
    return True


class ControlServer:
    """The listening side, driven by the master's selector loop.

    ``handler(command) -> reply`` answers one request; it runs in the master's loop, so it must
    not block. Clients are served without blocking: a client that sends half a line waits in a
    buffer and is dropped after REQUEST_TIMEOUT.
    """

    def __init__(self, path: str, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.path = path
        self.handler = handler
        if os.path.exists(path):
            if is_answering(path):
                raise ControlError(f"another master already answers on {path}")
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            self.sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.clients = PeerTable(self.sock, lambda conn: Peer(conn, REQUEST_TIMEOUT))

    def accept(self) -> socket.socket | None:
        """Accept one client; returns its socket for the caller to watch, or None."""
        return self.clients.accept()

    def read(self, conn: socket.socket) -> bool:
        """Read from a client and answer once a whole line is in.

        Returns False when the client is done; the caller then stops watching it and calls
        ``forget``.
        """
        client = self.clients.get(conn)
        if client is None:
            return False
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            return True
        except OSError:
            chunk = b""
        client.buffer += chunk
        if chunk and b"\n" not in client.buffer and len(client.buffer) < MAX_REQUEST:
            return True
        if chunk:
            self._answer(conn, client.buffer.split(b"\n", 1)[0])
        return False

    def _answer(self, conn: socket.socket, line: bytes) -> None:
        try:
            command = json.loads(line)
            if not isinstance(command, dict):
                raise ValueError("not an object")
            reply = self.handler(command)
        except ValueError as exc:
            reply = {"ok": False, "error": f"bad request: {exc}"}
        # Replies are small; a client that does not read them loses them.
        with contextlib.suppress(OSError):
            conn.send(json.dumps(reply).encode() + b"\n")

    def expired(self) -> list[socket.socket]:
        """Clients that said nothing useful within REQUEST_TIMEOUT."""
        return self.clients.expired()

    def forget(self, conn: socket.socket) -> None:
        self.clients.forget(conn)

    def close(self) -> None:
        self.clients.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
