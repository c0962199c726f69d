"""HTTP and websockets on the connections the master hands over: uvicorn's protocol classes
attached with ``loop.connect_accepted_socket`` (docs/design.md §2b), plus what a sioctl worker
adds around them: the client address the master named, the header deadlines (the first
request's here, later ones' in head_deadline.py), the drain gate, the access log, and the
counts the heartbeat reports.

uvicorn's ``Server`` is not used (it wants listening sockets and owns signals and lifespan):
one ``uvicorn.Config`` builds the protocol classes and wraps the app, one ``ServerState`` holds
the open connections (each HTTP or websocket protocol object adds itself) and the default
headers, which :meth:`Serving.tick` refreshes every second as ``Server.on_tick`` would.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import socket
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

import uvicorn
from gunicorn.glogging import Logger
from uvicorn.server import ServerState

from sioctl.cluster.settings import Settings
from sioctl.worker import full_worker
from sioctl.worker.aio.access_log import AsgiAccessLog
from sioctl.worker.aio.head_deadline import with_head_deadline
from sioctl.worker.aio.limits import RequestLimits
from sioctl.worker.aio.routes import engineio_routes
from sioctl.worker.aio.write_stall import with_write_stall
from sioctl.worker.aio.ws_protocol import lean_http_protocol, lean_websocket_protocol
from sioctl.worker.gate import opens_session
from sioctl.worker.tls import HANDSHAKE_TIMEOUT

AsgiApp = Callable[..., Any]
Address = tuple[str, int]

# The implementations chosen by experiment (design.md §2b); h11 when httptools is missing.
try:
    import httptools  # noqa: F401

    HTTP_IMPLEMENTATION = "httptools"
except ImportError:  # pragma: no cover - httptools is a dependency
    HTTP_IMPLEMENTATION = "h11"
WS_IMPLEMENTATION = "websockets-sansio"
DRAINING_BODY = b"server is shutting down\n"
# Closing a TLS connection waits for the client's close_notify, 30 s by default: a client that
# keeps an idle pooled connection never reads it, and the connection stays counted as open.
TLS_SHUTDOWN_TIMEOUT = 3.0


class DrainGate:
    """ASGI middleware: while draining, a request that would open a new engine.io session gets
    503 (a websocket is refused); requests of existing sessions go on (worker/gate.py's rule)."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self.draining = False

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        # The app's own awaitable, not a coroutine of ours awaiting it: a websocket's request
        # lasts as long as the connection, and each middleware frame on its chain of suspended
        # coroutines is ~300 bytes per idle websocket (uvicorn is told the app is ASGI 3).
        if (self.draining and scope["type"] in ("http", "websocket")
                and opens_session(scope.get("query_string", b"").decode("latin-1"))):
            return self._refuse(scope, send)
        return self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: dict[str, Any], send: Any) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})
            return
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"text/plain"), (b"connection", b"close"),
            (b"content-length", str(len(DRAINING_BODY)).encode())]})
        await send({"type": "http.response.body", "body": DRAINING_BODY})


class NamedPeerSocket(socket.socket):
    """A Unix-socket connection whose ``getpeername()`` is the client the master named.

    A Unix peer has no address (``''``), so uvicorn's client would be None and
    :class:`ClientAddresses` has no peer to key it by; asyncio's transport asks the socket
    itself, so the named client reaches the scope (both the HTTP and websocket protocols).
    uvloop reads the descriptor itself, so a worker with a Unix bind runs asyncio's own loop
    (main.new_loop)."""

    named: Address = ("", 0)

    @classmethod
    def wrap(cls, sock: socket.socket, addr: Address) -> NamedPeerSocket:
        wrapped = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        wrapped.setblocking(False)
        wrapped.named = addr
        return wrapped

    def getpeername(self) -> Address:
        return self.named


class ClientAddresses:
    """ASGI middleware: ``scope["client"]`` is the address the master named for the connection
    (the PROXY header's or a trusted proxy's client), not the TCP peer, when they differ.

    uvicorn takes the client from the socket's peer; the map is keyed by that peer, filled when
    a connection arrives and pruned of closed connections every second.
    """

    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self.named: dict[Address, Address] = {}

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        # The app's own awaitable (see DrainGate.__call__).
        if self.named and scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            named = self.named.get((client[0], client[1])) if client else None
            if named is not None:
                scope = {**scope, "client": named}
        return self.app(scope, receive, send)


class Serving:
    """Serves ``app`` on every connection given to :meth:`adopt`; a response the client makes
    no progress reading for ``write_span`` seconds ends its connection (0: never)."""

    def __init__(
        self,
        app: AsgiApp,
        settings: Settings,
        logger: logging.Logger,
        tls: ssl.SSLContext | None = None,
        app_state: dict[str, Any] | None = None,
        access_logger: Logger | None = None,
        write_span: float = 0.0,
    ) -> None:
        # The Engine.IO requests go straight to the server's handle_request (routes.py).
        self.gate = DrainGate(engineio_routes(app))
        # Outermost first: the client the master named, then the access log (which sees it and
        # the refusals of the limits), then gunicorn's request limits, then the drain gate.
        inner: AsgiApp = RequestLimits(self.gate, settings)
        if access_logger is not None:
            inner = AsgiAccessLog(inner, access_logger)
        self.addresses = ClientAddresses(inner)
        self.config = uvicorn.Config(
            self.addresses, http=HTTP_IMPLEMENTATION, ws=WS_IMPLEMENTATION,
            # The worker runs the lifespan (lifespan.py), keeps its own logging, and trusts the
            # master's address, never a forwarded header.
            lifespan="off", log_config=None, access_log=False, proxy_headers=False,
            # No limit_concurrency: uvicorn would answer 503 to requests on connections already
            # open; a full worker follows worker/full_worker.py's policy in adopt() instead.
            timeout_keep_alive=settings.keepalive,
            # engine.io pings its sessions itself.
            ws_ping_interval=None, ws_ping_timeout=None,
            # Off (the default), a client's compression offer is declined (docs/design.md,
            # "permessage-deflate").
            ws_per_message_deflate=settings.ws_per_message_deflate,
            server_header=False,
            # The middlewares' __call__ return the app's awaitable (DrainGate.__call__): not
            # coroutine functions, which uvicorn's "auto" would take for ASGI 2.
            interface="asgi3",
        )
        self.config.load()
        # The websocket protocol upgrades are handed to, keeping less per idle connection.
        self.config.ws_protocol_class = lean_websocket_protocol(self.config.ws_protocol_class)
        self.state = ServerState()
        # HttpToolsProtocol (worker/library_contract.py lists what the worker relies on), with
        # the header deadline of later requests on a kept-alive connection (head_deadline.py).
        # And a response the client does not read ends its connection after write_span
        # seconds without progress (write_stall.py).
        protocol_class: Any = with_head_deadline(with_write_stall(
            lean_http_protocol(self.config.http_protocol_class), write_span, logger),
            settings.header_timeout)
        self._factory = functools.partial(
            protocol_class, config=self.config, server_state=self.state,
            app_state=app_state if app_state is not None else {})
        self._tls = tls
        self._header_timeout = settings.header_timeout
        self._logger = logger
        self._attaching = 0
        self._gone_before: set[Address] = set()
        self._capacity = max(1, settings.worker_connections)
        # When each open HTTP connection arrived: the oldest idle one makes room first.
        self._arrivals: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        # Connections refused (503) because the worker was full, since it started.
        self.refused = 0
        self._answering = 0
        self._refusals_log = full_worker.refusals_log(logger, self._capacity)
        self._make_room_log = full_worker.make_room_log(logger, self._capacity)
        self.tick()

    def adopt(self, sock: socket.socket, addr: Address) -> None:
        """Serve a connection the master handed over (or our listener accepted) as ``addr``."""
        try:
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                # socket.io sends many small frames that must not wait for an ACK.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            else:
                sock = NamedPeerSocket.wrap(sock, addr)
            peer = sock.getpeername()
        except OSError:
            sock.close()  # the client is already gone
            return
        if self.open_connections() >= self._capacity and not self._make_room():
            self._refuse(sock)
            return
        if (peer[0], peer[1]) != addr:
            self.addresses.named[(peer[0], peer[1])] = addr
        self._attaching += 1
        asyncio.get_running_loop().create_task(self._attach(sock))

    async def _attach(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        # The header timeout counts from the arrival, TLS handshake included (as on eventlet).
        handshake = self._header_timeout if self._header_timeout > 0 else HANDSHAKE_TIMEOUT
        tls: dict[str, Any] = {}
        if self._tls is not None:
            tls = {"ssl": self._tls, "ssl_handshake_timeout": handshake}
            if _takes_shutdown_timeout(loop):
                tls["ssl_shutdown_timeout"] = TLS_SHUTDOWN_TIMEOUT
        try:
            transport, protocol = await loop.connect_accepted_socket(self._factory, sock, **tls)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            self._logger.debug("dropped a connection before its first request: %r", exc)
            sock.close()
            return
        finally:
            self._attaching -= 1
        self._arrivals[protocol] = arrived
        # Already upgraded to a websocket (the request was read before this task resumed, as
        # uvloop does with a head waiting in the socket): no head to wait for, no timer.
        upgraded = transport.get_protocol() is not protocol
        http: Any = protocol
        if self._header_timeout > 0 and not upgraded:
            left = self._header_timeout - (loop.time() - arrived)
            # A weak reference: once upgraded, the HTTP protocol object (its parser and
            # buffers, ~5 KiB) must not live on until the deadline (measured: 46 KiB per idle
            # websocket with a strong one, 41 without, as a stock uvicorn).
            # Kept on the protocol so that an upgrade cancels it (ws_protocol.LeanUpgradeMixin).
            http.sioctl_head_check = loop.call_later(
                max(0.0, left), self._check_head, transport, weakref.ref(http))

    def _check_head(self, transport: asyncio.BaseTransport, ref: weakref.ref[Any]) -> None:
        """Close a connection that has not completed a request head in time (uvicorn itself
        only times out idle keep-alive connections, after a first response)."""
        protocol = ref()
        if protocol is not None:
            protocol.sioctl_head_check = None
        if protocol is None or transport.is_closing() or transport.get_protocol() is not protocol:
            return  # closed, or upgraded to a websocket
        if getattr(protocol, "cycle", None) is None:
            self._logger.debug("closed a connection: no complete request head in time")
            transport.close()

    def _make_room(self) -> bool:
        """Close the oldest connection waiting for a request (nothing left to write); False
        when every connection is busy (a long-poll, a websocket, a request being served)."""
        idle = [(arrived, conn) for conn, arrived in list(self._arrivals.items())
                if _is_idle(conn)]
        if not idle:
            return False
        _arrived, conn = min(idle, key=lambda item: item[0])
        conn.transport.abort()
        self._make_room_log.note()
        return True

    def _refuse(self, sock: socket.socket) -> None:
        """Answer 503 + Retry-After and close (count it, log it at most once in a while)."""
        self.refused += 1
        self._refusals_log.note()
        if self._tls is not None or self._answering >= full_worker.MAX_ANSWERING:
            sock.close()  # over TLS the answer would need a handshake first
            return
        self._answering += 1
        asyncio.get_running_loop().create_task(self._answer_refusal(sock))

    async def _answer_refusal(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()

        async def answer() -> None:
            await loop.sock_sendall(sock, full_worker.REFUSAL)
            sock.shutdown(socket.SHUT_WR)
            received = 0
            while received < full_worker.REFUSAL_LINGER_BYTES:
                chunk = await loop.sock_recv(sock, 16384)
                if not chunk:
                    break
                received += len(chunk)

        try:
            await asyncio.wait_for(answer(), full_worker.REFUSAL_LINGER)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            self._answering -= 1
            sock.close()

    def open_connections(self) -> int:
        """Open client connections, HTTP and websocket, those still being attached included."""
        return len(self.state.connections) + self._attaching

    def tick(self) -> None:
        """Once a second: the Date header, and forget the names of closed connections."""
        date = formatdate(time.time(), usegmt=True).encode()
        self.state.default_headers = [(b"date", date), *self.config.encoded_headers]
        if self.addresses.named:
            # A name is dropped once its connection was not open at two ticks in a row: one
            # being attached right now has no protocol object yet.
            open_peers = {getattr(conn, "client", None) for conn in list(self.state.connections)}
            gone = {p for p in self.addresses.named if p not in open_peers}
            for peer in gone & self._gone_before:
                self.addresses.named.pop(peer, None)
            self._gone_before = gone

    def shutdown_connections(self) -> None:
        """Drop idle connections, end busy ones after their response (no keep-alive), close
        websockets (code 1012, service restart): uvicorn's graceful shutdown step, except that
        an idle connection with nothing left to write is aborted rather than closed (a TLS close
        would wait for the client's close_notify)."""
        for conn in list(self.state.connections):
            if _is_idle(conn):
                conn.transport.abort()
            else:
                conn.shutdown()


def _is_idle(conn: Any) -> bool:
    """An HTTP connection waiting for a request, with nothing left to write (a websocket, or an
    HTTP connection serving a request or a long-poll, is busy)."""
    if not hasattr(conn, "cycle"):
        return False  # a websocket protocol
    cycle = conn.cycle
    transport = getattr(conn, "transport", None)
    return ((cycle is None or cycle.response_complete) and transport is not None
            # Not upgraded: a websocket's HTTP protocol object has no cycle, and has handed the
            # transport to the websocket protocol.
            and transport.get_protocol() is conn
            and not transport.is_closing() and not transport.get_write_buffer_size())


@functools.lru_cache(maxsize=4)
def _takes_shutdown_timeout(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the loop's connect_accepted_socket has ssl_shutdown_timeout (uvloop, and
    asyncio's own from Python 3.11; sioctl still runs on 3.10)."""
    return "ssl_shutdown_timeout" in inspect.signature(loop.connect_accepted_socket).parameters
