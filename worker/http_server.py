"""Serve HTTP on the connections from a queue with eventlet.wsgi, and keep count of them.

eventlet.wsgi.server() wants a listening socket; our connections arrive on a queue instead, so
this runs eventlet's own per-connection handler (wsgi.Server.process_request) from a small
loop. That also gives the drain what it needs: the open connections and whether each is idle.

At most ``worker_connections`` are served at once; past that, the policy of
worker/full_worker.py (close the longest idle connection, else refuse with 503).
"""

from __future__ import annotations

import itertools
import logging
import socket
import ssl
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import eventlet
import eventlet.greenio
import eventlet.semaphore
import eventlet.wsgi
from eventlet.patcher import original

from sioctl.cluster.settings import Settings
from sioctl.worker.calls import direct_call
from sioctl.worker.connection import Connection, TimedProtocol, WebsocketHandover
from sioctl.worker.fd_listener import ConnectionQueue
from sioctl.worker.full_worker import (
    MAKE_ROOM_CANDIDATES,
    MAX_ANSWERING,
    REFUSAL,
    REFUSAL_LINGER,
    REFUSAL_LINGER_BYTES,
    make_room_log,
    refusals_log,
)
from sioctl.worker.tls import HANDSHAKE_TIMEOUT

# The kernel's select: the green one would switch to the hub even with a zero timeout.
_select: Any = original("select")

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
    """Runs the WSGI app on every connection put on ``connections``; a response write that
    makes no progress for ``write_span`` seconds (the app's ``ping_interval + ping_timeout``)
    ends its connection."""

    def __init__(
        self,
        app: Callable[..., Any],
        settings: Settings,
        connections: ConnectionQueue,
        tls: ssl.SSLContext | None = None,
        logger: logging.Logger | None = None,
        write_span: float = 0.0,
    ):
        self.connections = connections
        self._tls = tls
        self._logger = logger or logging.getLogger("sioctl.worker")
        self._server = eventlet.wsgi.Server(
            _NoTlsListener() if tls is not None else _NoListener(),
            ("", 0),
            direct_call(app),  # no C-level call per layer (worker/calls.py)
            protocol=TimedProtocol,
            keepalive=settings.keepalive > 0,
            log_output=False,
            url_length_limit=settings.limit_request_line
            if settings.limit_request_line > 0
            else eventlet.wsgi.MAX_REQUEST_LINE,
            # Tracebacks must not reach clients; the app's errors are logged by our middleware.
            debug=False,
        )
        # Read by TimedProtocol (eventlet's own ``keepalive`` stays a flag: given a number, it
        # would also time out a new connection's first read after that many seconds).
        self._server.header_timeout = settings.header_timeout
        self._server.keepalive_timeout = settings.keepalive
        # Read by TimedProtocol.setup: a response write that finds no room in the socket for
        # this long ends its connection (worker/protocol/core/write_stall.py; 0: never).
        self._server.write_span = write_span
        self._server.stall_logger = self._logger
        # Read by TimedProtocol.get_environ: off, no websocket app sees a compression offer.
        self._server.ws_per_message_deflate = settings.ws_per_message_deflate
        self._header_timeout = settings.header_timeout
        self._capacity = max(1, settings.worker_connections)
        # One slot per connection served (what a GreenPool of that size would count; a pool
        # would also start each connection's green thread one C-level call deeper, which an
        # idle websocket's saved stack carries: worker/calls.py).
        self._slots = eventlet.semaphore.Semaphore(self._capacity)
        self._open: dict[int, Connection] = {}
        # The connections waiting for a request head, longest waiting first.
        self._waiting: OrderedDict[int, Connection] = OrderedDict()
        self._ids = itertools.count()
        # Connections refused because the worker was full, since it started.
        self.refused = 0
        self._answering = 0
        self._refusals_log = refusals_log(self._logger, self._capacity)
        self._make_room_log = make_room_log(self._logger, self._capacity)

    def serve_forever(self) -> None:
        """Take connections from the queue and serve each in its own green thread.

        Never blocks on a full worker for longer than a closed idle connection takes to end,
        so nothing piles up on the queue unseen.
        """
        while True:
            sock, addr = self.connections.get()
            sock.settimeout(None)
            if not self._slots.counter and not self._make_room():
                self._refuse(sock)
                continue
            conn = Connection(next(self._ids), sock, addr, self._waiting)
            self._open[conn.key] = conn
            # From its arrival: the TLS handshake and the first request head count.
            conn.deadline(self._header_timeout, "no complete request head in time")
            # Waits for the slot of a connection _make_room closed (its green thread ends at
            # once). spawn_n: a bare greenlet; spawn's GreenThread (with its exit event and
            # link list) would be one more set of objects per connection that nothing reads.
            self._slots.acquire()
            eventlet.spawn_n(self._serve_one, conn)

    def _serve_one(self, conn: Connection) -> None:
        protocol: TimedProtocol | None = None
        try:
            if self._tls is not None:
                self._handshake(conn)
            # eventlet.wsgi's process_request is ``self.protocol(conn_state, self)``: the
            # handler (an HttpProtocol) serves the connection from its __init__.
            # Instantiating a class is a C-level call that a green thread's saved stack
            # would carry (worker/calls.py); calling __init__ as a bound method is not. (Its
            # socket.timeout handling closes the socket, as _end does.)
            protocol = TimedProtocol.__new__(TimedProtocol)
            protocol.__init__(conn.state, self._server)
        except Exception:
            pass  # eventlet.wsgi ends a broken connection the same way: close it, move on
        finally:
            handover = protocol.websocket_handover() if protocol is not None else None
            if handover is not None:
                # The connection became a websocket whose reading was handed over: this green
                # thread ends (with it the stack of the whole HTTP and WSGI call chain, and
                # the handler) and one started at the hub reads the websocket, holding the
                # slot until it ends.
                eventlet.spawn_n(self._read_websocket, conn, handover)
            else:
                self._end(conn)

    def _read_websocket(self, conn: Connection, handover: WebsocketHandover) -> None:
        """Read a websocket a request handed over, at the bottom of a shallow stack (an idle
        websocket's green thread waits here; docs/design.md, "Memory per idle websocket"),
        then end the request and the connection."""
        try:
            handover.read()
        except Exception:  # as errors_logged does for the app (the request has returned)
            self._logger.exception("error reading a websocket from %s", conn.state[0][0])
        finally:
            try:
                handover.end()
            except Exception:
                pass  # as eventlet.wsgi's end of a broken connection: close it, move on
            finally:
                self._end(conn)

    def _end(self, conn: Connection) -> None:
        """The connection is over: forget it, close its socket, free its slot."""
        try:
            conn.closed()
            if conn.cut_reason is not None:
                self._logger.debug("closed a connection from %s: %s", conn.state[0][0],
                                   conn.cut_reason)
            self._open.pop(conn.key, None)
            conn.state[2] = eventlet.wsgi.STATE_CLOSE
            eventlet.greenio.shutdown_safe(conn.sock)
            conn.sock.close()
        finally:
            self._slots.release()

    def _handshake(self, conn: Connection) -> None:
        """Wrap the connection in TLS; raises when the handshake fails (the caller closes)."""
        assert self._tls is not None
        conn.sock.settimeout(HANDSHAKE_TIMEOUT)
        # Handshake after the wrapped socket is in conn.state, so a deadline shuts down the
        # socket the handshake is reading (wrapping detaches the plain one).
        conn.state[1] = self._tls.wrap_socket(
            conn.sock, server_side=True, do_handshake_on_connect=False)
        conn.sock.do_handshake()
        conn.sock.settimeout(None)

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for a request; False if none waits.

        One with bytes ready to read is not idle, only not yet scheduled (a burst of new
        clients): it is left alone. The pool slot frees once the closed one's green thread
        has ended, which it does at once (its read returns).
        """
        for checked, conn in enumerate(list(self._waiting.values())):
            if checked >= MAKE_ROOM_CANDIDATES:
                break
            if not _has_input(conn.sock):
                conn.cut("closed to make room: the worker was full")
                self._make_room_log.note()
                return True
        return False

    def _refuse(self, sock: Any) -> None:
        """Answer 503 + Retry-After and close (count it, log it at most once in a while)."""
        self.refused += 1
        self._refusals_log.note()
        if self._tls is not None or self._answering >= MAX_ANSWERING:
            # Over TLS the answer would need a handshake first: the client sees a close.
            _close(sock)
            return
        self._answering += 1
        eventlet.spawn_n(self._answer_refusal, sock)

    def _answer_refusal(self, sock: Any) -> None:
        try:
            with eventlet.Timeout(REFUSAL_LINGER, False):
                sock.sendall(REFUSAL)
                sock.shutdown(socket.SHUT_WR)
                received = 0
                while received < REFUSAL_LINGER_BYTES:
                    chunk = sock.recv(16384)
                    if not chunk:
                        break
                    received += len(chunk)
        except OSError:
            pass
        finally:
            self._answering -= 1
            _close(sock)

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
        for conn in list(self._open.values()):
            state = conn.state
            previous = state[2]
            state[2] = eventlet.wsgi.STATE_CLOSE
            if previous == eventlet.wsgi.STATE_IDLE:
                eventlet.greenio.shutdown_safe(state[1])
                closed += 1
        return closed


def _has_input(sock: Any) -> bool:
    """Whether bytes wait unread on ``sock`` (or it is closed): a poll that never blocks."""
    try:
        readable, _, _ = _select.select([sock.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(readable)


def _close(sock: Any) -> None:
    try:
        sock.close()
    except OSError:
        pass
