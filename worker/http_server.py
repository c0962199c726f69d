"""Serve HTTP on the connections from a queue with eventlet.wsgi, and keep count of them.

eventlet.wsgi.server() wants a listening socket; our connections arrive on a queue instead, so
this runs eventlet's own per-connection handler (wsgi.Server.process_request) from a small
loop. That also gives the drain what it needs: the open connections and whether each is idle.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Callable
from typing import Any

import eventlet
import eventlet.greenio
import eventlet.wsgi

from sioctl.cluster.settings import Settings
from sioctl.worker.fd_listener import ConnectionQueue
from sioctl.worker.tls import HANDSHAKE_TIMEOUT


class _NoListener:
    """Stands in for the listening socket eventlet.wsgi.Server asks about (plain http)."""

    family = 0

    def getsockname(self) -> str:
        return "sioctl-channel"


class _NoTlsListener(_NoListener):
    """eventlet.wsgi sets wsgi.url_scheme to https when its listener has do_handshake."""

    def do_handshake(self) -> None:
        """Never called: only its presence matters."""


class HttpServer:
    """Runs the WSGI app on every connection put on ``connections``."""

    def __init__(
        self,
        app: Callable[..., Any],
        settings: Settings,
        connections: ConnectionQueue,
        tls: ssl.SSLContext | None = None,
    ):
        self.connections = connections
        self._tls = tls
        self._server = eventlet.wsgi.Server(
            _NoTlsListener() if tls is not None else _NoListener(),
            ("", 0),
            app,
            keepalive=settings.keepalive > 0,
            log_output=False,
            url_length_limit=settings.limit_request_line
            if settings.limit_request_line > 0
            else eventlet.wsgi.MAX_REQUEST_LINE,
            # Tracebacks must not reach clients; the app's errors are logged by our middleware.
            debug=False,
        )
        # GreenPool.spawn blocks when full, so at most worker_connections are served at once
        # and the rest wait on the queue (eventlet.wsgi.server's own cap would be 1024).
        self._pool = eventlet.GreenPool(max(1, settings.worker_connections))
        # id -> eventlet's [addr, socket, state] for every open connection.
        self._open: dict[int, list[Any]] = {}
        self._ids = itertools.count()

    def serve_forever(self) -> None:
        """Take connections from the queue and serve each in its own green thread."""
        while True:
            sock, addr = self.connections.get()
            sock.settimeout(None)
            state = [addr, sock, eventlet.wsgi.STATE_IDLE]
            key = next(self._ids)
            self._open[key] = state
            self._pool.spawn(self._serve_one, key, state)

    def _serve_one(self, key: int, state: list[Any]) -> None:
        try:
            if self._tls is not None:
                state[1] = self._handshake(state[1])
            self._server.process_request(state)
        except Exception:
            pass  # eventlet.wsgi ends a broken connection the same way: close it, move on
        finally:
            self._open.pop(key, None)
            state[2] = eventlet.wsgi.STATE_CLOSE
            eventlet.greenio.shutdown_safe(state[1])
            state[1].close()

    def _handshake(self, sock: Any) -> Any:
        """The connection wrapped in TLS; raises when the handshake fails (the caller closes)."""
        assert self._tls is not None
        sock.settimeout(HANDSHAKE_TIMEOUT)
        tls_sock = self._tls.wrap_socket(sock, server_side=True)
        tls_sock.settimeout(None)
        return tls_sock

    def open_connections(self) -> int:
        """Open client connections, counting those still waiting on the queue."""
        return len(self._open) + self.connections.qsize()

    def stop_keepalive(self) -> None:
        """Every response from now on says ``Connection: close`` and ends its connection."""
        self._server.keepalive = False

    def close_idle(self) -> int:
        """Shut down connections waiting for their next request; returns how many.

        Busy connections are marked to close after the request they are serving.
        """
        closed = 0
        for state in list(self._open.values()):
            previous = state[2]
            state[2] = eventlet.wsgi.STATE_CLOSE
            if previous == eventlet.wsgi.STATE_IDLE:
                eventlet.greenio.shutdown_safe(state[1])
                closed += 1
        return closed
