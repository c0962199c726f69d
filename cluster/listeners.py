"""The master's public listening sockets: TCP, or Unix sockets for a proxy on this machine."""

from __future__ import annotations

import contextlib
import os
import socket
import stat

from .settings import parse_bind, unix_path

# Who may connect to a Unix listener: anyone who can reach its directory, as gunicorn's default
# umask 0 gives (nginx runs as another user); the directory's permissions are the gate.
UNIX_MODE = 0o666


class ListenError(Exception):
    """A bind address could not be listened on; the message names it and says why."""


def open_listener(bind: str, backlog: int, v6only: bool = False) -> socket.socket:
    """A non-blocking listening TCP socket for ``HOST:PORT`` / ``[V6]:PORT``.

    SO_REUSEADDR lets a restarted master bind while old connections sit in TIME_WAIT; there is
    deliberately no SO_REUSEPORT (eventlet.listen's default), with which a stale server on the same
    port would silently take a share of the connections. An IPv6 listener serves IPv4 too
    (dual-stack, as gunicorn's) unless ``v6only``, which lets an IPv4 bind share its port.
    ``unix:PATH`` listens on a Unix socket (:func:`open_unix_listener`).
    """
    path = unix_path(bind)
    if path is not None:
        return open_unix_listener(path, backlog)
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


def open_unix_listener(path: str, backlog: int) -> socket.socket:
    """A non-blocking listening Unix socket at ``path`` (mode UNIX_MODE). A stale socket file
    that nobody answers on is replaced; a live one, or a file of another kind, is an error."""
    bind = f"unix:{path}"
    try:
        mode: int | None = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise ListenError(f"cannot bind {bind}: {exc.strerror}") from None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise ListenError(f"cannot bind {bind}: the path exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except OSError:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)  # left by a master that died
            else:
                raise ListenError(f"cannot bind {bind}: another server listens there")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, UNIX_MODE)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot bind {bind}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def socket_file(sock: socket.socket) -> tuple[str, int] | None:
    """A Unix listener's (path, inode of its file), to remove that file later; None for TCP."""
    if sock.family != socket.AF_UNIX:
        return None
    path = sock.getsockname()
    try:
        return path, os.lstat(path).st_ino
    except OSError:
        return None


def close_listener(sock: socket.socket, file: tuple[str, int] | None = None) -> None:
    """Close a listener, and remove its Unix socket ``file`` (:func:`socket_file`) if the path
    still holds that one (a new master may have bound the path since)."""
    sock.close()
    if file is None:
        return
    path, inode = file
    with contextlib.suppress(OSError):
        found = os.lstat(path)
        if stat.S_ISSOCK(found.st_mode) and found.st_ino == inode:
            os.unlink(path)


def open_listeners(binds: list[str], backlog: int) -> list[socket.socket]:
    """Listen on every bind address, or on none: on failure the ones opened are closed again."""
    opened: list[socket.socket] = []
    ipv4_ports = set()
    for bind in binds:
        if unix_path(bind) is not None:
            continue
        try:
            host, port = parse_bind(bind)
        except ValueError as exc:
            raise ListenError(str(exc)) from None
        if ":" not in host:
            ipv4_ports.add(port)
    try:
        for bind in binds:
            v6only = unix_path(bind) is None and parse_bind(bind)[1] in ipv4_ports
            opened.append(open_listener(bind, backlog, v6only=v6only))
    except ListenError:
        for sock in opened:
            close_listener(sock, socket_file(sock))
        raise
    return opened


def display_address(sock: socket.socket, scheme: str = "http") -> str:
    """``http://host:port`` (or ``https://`` when the workers terminate TLS) for a listening
    socket, with IPv6 hosts in brackets (``unix:PATH`` for a Unix one)."""
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
