"""The worker's end of the master channel on the event loop (see cluster/channel.py).

Reading never blocks the loop: ``loop.add_reader`` calls :meth:`AsyncChannel._on_readable`,
which takes every waiting datagram with ``recvmsg`` (a ``conn`` message brings one fd as
SCM_RIGHTS) and hands each connection to the callback. Sending is a datagram per message; the
channel only fills when the master stops reading, and then messages wait in order until it
drains.
"""

from __future__ import annotations

import array
import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

from sioctl.cluster import channel as master_channel
from sioctl.worker.addresses import close_fds, connection_message, first_line

# fds taken per datagram at most; a conn message carries one, more is a protocol error.
MAX_FDS = 4

OnConnection = Callable[[socket.socket, tuple[str, int]], None]


class AsyncChannel:
    """Reads connections from the master and sends it messages, on ``loop``."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop, logger: logging.Logger) -> None:
        self._sock = socket.socket(fileno=fd)
        self._sock.setblocking(False)
        self._loop = loop
        self._logger = logger
        self._outbox: deque[bytes] = deque()
        self.fd = fd

    def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` now, or as soon as the channel has room (in order); raises OSError
        when the master's end is gone."""
        self._outbox.append(master_channel.encode(message))
        if len(self._outbox) == 1:
            self._flush()

    def _flush(self) -> None:
        while self._outbox:
            try:
                self._sock.send(self._outbox[0])
            except BlockingIOError:
                self._loop.add_writer(self.fd, self._flush)
                return
            except OSError:
                self._outbox.clear()  # the master is gone: nothing will ever be read
                self._loop.remove_writer(self.fd)
                raise
            self._outbox.popleft()
        self._loop.remove_writer(self.fd)

    def start_reading(self, on_connection: OnConnection, on_eof: Callable[[], None]) -> None:
        """Call ``on_connection(sock, addr)`` for every connection the master sends, and
        ``on_eof()`` once its end is closed. A malformed message is logged and its fds closed."""

        def on_readable() -> None:
            while True:
                try:
                    data, fds, truncated = self._receive()
                except BlockingIOError:
                    return
                except ConnectionResetError:
                    data, fds, truncated = b"", [], False
                if not data and not fds and not truncated:
                    self._loop.remove_reader(self.fd)
                    on_eof()
                    return
                self._take(data, fds, truncated, on_connection)

        self._loop.add_reader(self.fd, on_readable)

    def _receive(self) -> tuple[bytes, list[int], bool]:
        fds = array.array("i")
        data, ancillary, flags, _ = self._sock.recvmsg(
            master_channel.MAX_MESSAGE, socket.CMSG_LEN(MAX_FDS * fds.itemsize))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        return data, list(fds), bool(flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC))

    def _take(
        self, data: bytes, fds: list[int], truncated: bool, on_connection: OnConnection
    ) -> None:
        try:
            fd, addr = connection_message(data, fds, truncated)
            sock = socket.socket(fileno=fd)
        except (ValueError, KeyError, UnicodeDecodeError, OSError) as exc:
            self._logger.warning("dropped a malformed channel message: %s", first_line(exc))
            close_fds(fds)
            return
        on_connection(sock, addr)
