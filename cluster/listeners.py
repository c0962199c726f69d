"""The master's public listening sockets."""

from __future__ import annotations

import socket

from .settings import parse_bind


class ListenError(Exception):
    """A bind address could not be listened on; the message names it and says why."""


def open_listener(bind: str, backlog: int, v6only: bool = False) -> socket.socket:
    """A non-blocking listening TCP socket for ``HOST:PORT`` / ``[V6]:PORT``.

    SO_REUSEADDR lets a restarted master bind while old connections sit in TIME_WAIT; there is
    deliberately no SO_REUSEPORT (eventlet.listen's default), with which a stale server on the same
    port would silently take a share of the connections. An IPv6 listener serves IPv4 too
    (dual-stack, as gunicorn's) unless ``v6only``, which lets an IPv4 bind share its port.
    """
    try:
        host, port = parse_bind(bind)
    except ValueError as exc:
        raise ListenError(str(exc)) from None
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
        )
    except socket.gaierror as exc:
        raise ListenError(f"cannot bind {bind}: {exc.strerror}") from None
    family, type_, proto, _, address = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot bind {bind}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def open_listeners(binds: list[str], backlog: int) -> list[socket.socket]:
    """Listen on every bind address, or on none: on failure the ones opened are closed again."""
    opened: list[socket.socket] = []
    ipv4_ports = set()
    for bind in binds:
        try:
            host, port = parse_bind(bind)
        except ValueError as exc:
            raise ListenError(str(exc)) from None
        if ":" not in host:
            ipv4_ports.add(port)
    try:
        for bind in binds:
            host, port = parse_bind(bind)
            opened.append(open_listener(bind, backlog, v6only=port in ipv4_ports))
    except ListenError:
        for sock in opened:
            sock.close()
        raise
    return opened


def display_address(sock: socket.socket) -> str:
    """``http://host:port`` for a listening socket, with IPv6 hosts in brackets."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
