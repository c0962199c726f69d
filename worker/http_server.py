"""Serve HTTP on the connections from a queue with eventlet.wsgi, and keep count of them.

eventlet.wsgi.server() wants a listening socket; our connections arrive on a queue instead, so
this runs eventlet's own per-connection handler (wsgi.Server.process_request) from a small
loop. That also gives the drain what it needs: the open connections and whether each is idle.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import eventlet
import eventlet.greenio
import eventlet.wsgi

from sioctl.cluster.settings import Settings
from sioctl.worker.fd_listener import ConnectionQueue


class _NoListener:
    """Stands in for the listening socket eventlet.wsgi.Server asks about (plain http)."""

    family = 0

    def getsockname(self) -> str:
        return "sioctl-channel"


class HttpServer:
    """Runs the WSGI app on every connection put on ``connections``."""

    def __init__(self, app: Callable[..., Any], settings: Settings, connections: ConnectionQueue):
        self.connections = connections
        self._server = eventlet.wsgi.Server(
            _NoListener(),
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
            self._server.process_request(state)
        except Exception:
            pass  # eventlet.wsgi ends a broken connection the same way: close it, move on
        finally:
            self._open.pop(key, None)
            state[2] = eventlet.wsgi.STATE_CLOSE
            eventlet.greenio.shutdown_safe(state[1])
            state[1].close()

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
