"""Client connections from the master's channel, or from our own listening socket.

Either way the connections end up on a green queue as (green socket, (host, port)); the
HTTP server takes them from there.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

import eventlet
import eventlet.greenio
import eventlet.hubs
import eventlet.queue
from eventlet.patcher import original

from sioctl.cluster import channel as master_channel
from sioctl.worker.addresses import close_fds, connection_message, first_line

# After monkey-patching, socket.socket(fileno=fd) can report the wrong family for an IPv6 fd;
# the original module asks the kernel.
_socket: Any = original("socket")

ConnectionQueue = Any  # an eventlet.queue.LightQueue of (green socket, Address)


class Channel:
    """The worker's end of the master channel, usable from green threads."""

    def __init__(self, fd: int) -> None:
        self._sock = _socket.socket(fileno=fd)
        self._sock.setblocking(False)
        eventlet.hubs.notify_opened(fd)
        self.fd = fd

    def send(self, message: dict[str, Any]) -> None:
        """Send one message; blocks this green thread only while the channel is full."""
        data = master_channel.encode(message)
        while True:
            try:
                self._sock.send(data)
                return
            except BlockingIOError:
                eventlet.hubs.trampoline(self.fd, write=True)

    def receive(self) -> tuple[bytes, list[int], bool]:
        """The next datagram, the fds it carried, and whether it was cut short.

        Returns (b"", [], False) once the master's end is closed.

        recv_fds on a green socket raises BlockingIOError at once, so wait on the hub and retry.
        """
        while True:
            try:
                data, fds, flags, _ = _socket.recv_fds(self._sock, master_channel.MAX_MESSAGE, 4)
            except BlockingIOError:
                eventlet.hubs.trampoline(self.fd, read=True)
                continue
            except ConnectionResetError:
                return b"", [], False
            # A datagram too long, or more fds than we take: never a valid message.
            truncated = bool(flags & (_socket.MSG_TRUNC | _socket.MSG_CTRUNC))
            return data, fds, truncated


def adopt_connection(fd: int) -> eventlet.greenio.GreenSocket:
    """A green socket for a client connection fd received from the master (TCP_NODELAY set)."""
    raw = _socket.socket(fileno=fd)
    eventlet.hubs.notify_opened(fd)
    green = eventlet.greenio.GreenSocket(raw)
    set_nodelay(green)
    return green


def set_nodelay(sock: Any) -> None:
    """Turn off Nagle: socket.io sends many small frames that must not wait for an ACK."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # the client may already be gone; the server will notice on first read


def receive_connections(
    channel: Channel,
    connections: ConnectionQueue,
    logger: logging.Logger,
    on_eof: Callable[[], None],
) -> None:
    """Put every connection the master sends on ``connections``, until the channel ends.

    A malformed message is logged (one line), its fds are closed, and reading goes on.
    ``on_eof`` runs when the master's end is closed.
    """
    while True:
        data, fds, truncated = channel.receive()
        if not data and not fds and not truncated:
            on_eof()
            return
        try:
            fd, addr = connection_message(data, fds, truncated)
        except (ValueError, KeyError, UnicodeDecodeError) as exc:
            logger.warning("dropped a malformed channel message: %s", first_line(exc))
            close_fds(fds)
            continue
        try:
            sock = adopt_connection(fd)
        except OSError as exc:
            logger.warning("dropped a connection from %s: %s", addr[0], exc)
            close_fds([fd])
            continue
        connections.put((sock, addr))


def accept_connections(listener: Any, connections: ConnectionQueue) -> None:
    """Put every connection accepted on ``listener`` (standalone mode) on ``connections``."""
    while True:
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                eventlet.sleep(0.1)  # out of fds for a moment; don't spin
                continue
            if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                continue
            raise
        set_nodelay(sock)
        connections.put((sock, (addr[0], addr[1])))

