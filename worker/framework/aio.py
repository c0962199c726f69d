"""The asyncio (async) shell of the framework: the same core, awaited on a socketio.AsyncServer.

Every decision comes from :mod:`.core`, :mod:`.namespace`, :mod:`.onion`, :mod:`.routing` and
:mod:`.context`, as in the eventlet shell (``application.py``); this module only awaits. The
rules of the shell:

- a middleware, controller action, ``Controller`` method, route handler or plugin hook may be
  ``async def``; a plain one is called as it is, on the event loop, and what it returns is
  awaited if it is awaitable (:func:`settle`);
- ``next()`` returns an awaitable that runs the rest of the chain once: ``await next()`` in an
  ``async def`` middleware, ``return next()`` in a plain one. A plain middleware that calls
  ``next()`` and returns something else has the rest run right after it returns (its own code
  after ``next()`` has then already run: a plain middleware has no after-half here; write it
  ``async def`` for one);
- ``ctx.socket``'s operations that reach the server are coroutines (``await
  ctx.socket.emit(...)``, ``join``, ``leave``, ``disconnect``, ``to(room).emit``), as on
  ``socketio.AsyncServer``; ``ctx.socket.rooms`` stays a property.

Custom socket ids (``io.generate_id``) are claimed in the asyncio manager's Redis
(:class:`.ids.AsyncIdClaims`); Redis sessions are read and written with ``redis.asyncio``
(:mod:`.session_async`). What the asyncio engine supplies around this shell is listed in
docs/design.md §7 ("Core and shells").
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import socketio

from sioctl.worker.errors import BootError
from sioctl.worker.redis_clients import asyncio_client

from .config import NamespaceConfig
from .context import SocketCore
from .core import AppCore, id_in_use, load_app, server_options, session_redis_url
from .ids import AsyncIdClaims, CustomIds
from .middleware import Middleware
from .namespace import ConnectionState, NamespaceCore, Step
from .onion import NextNotCalled, Turn
from .plugins import Plugin, PluginFactory
from .session_async import AsyncSessionLoader

log = logging.getLogger("sioctl.app")


async def settle(value: Any) -> Any:
    """``value``, awaited first if it is awaitable (what a plain callable returned is used as
    it is)."""
    if inspect.isawaitable(value):
        return await value
    return value


async def run_steps(steps: list[Step]) -> None:
    """Call (and await) ``steps`` in order; a guarded step's failure is logged and the next
    one runs."""
    for step in steps:
        try:
            await settle(step.call())
        except Exception as exc:
            step.failed(exc)


class _Rest:
    """What ``next()`` returns: the rest of the chain, run by the first ``await``."""

    def __init__(self, run: Callable[[], Awaitable[None]]) -> None:
        self._run = run
        self.started = False

    def __await__(self) -> Generator[Any, None, None]:
        if self.started:
            raise RuntimeError("the awaitable of next() was awaited twice")
        self.started = True
        return self._run().__await__()


async def run_chain_async(
    layers: list[tuple[str, Middleware]], ctx: Any, innermost: Callable[[], Any]
) -> None:
    """Run ``layers`` around ``innermost`` by awaiting (the async shell of :mod:`.onion`);
    raises NextNotCalled when a layer skips ``next()``. Exceptions from any layer propagate
    to the caller (after unwinding the outer layers)."""

    async def call(index: int) -> None:
        if index == len(layers):
            await settle(innermost())
            return
        name, middleware = layers[index]
        turn = Turn(name)
        rest = _Rest(lambda: call(index + 1))

        def next_() -> _Rest:
            turn.enter_next()
            return rest

        await settle(middleware(ctx, next_))
        if turn.called and not rest.started:
            await rest  # a plain middleware called next() and returned without it
        turn.returned()

    await call(0)


class AsyncRoomEmitter:
    """``socket.to(room)`` and ``socket.broadcast`` on asyncio: emits that skip the sender."""

    def __init__(self, socket: AsyncSocketHandle, room: str | None) -> None:
        self._socket = socket
        self._room = room

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to the room (or to everyone) in this namespace, except this socket."""
        await self._socket.server.emit(**self._socket.emit_to_room(self._room, event, args))

    def to(self, room: str) -> AsyncRoomEmitter:
        return AsyncRoomEmitter(self._socket, room)


class AsyncSocketHandle(SocketCore):
    """The async shell of ``ctx.socket``, on a ``socketio.AsyncServer``."""

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to this client (held back during the handshake)."""
        if not self.hold(event, args):
            await self.server.emit(**self.emit_to_self(event, args))

    async def release(self) -> None:
        """Send what was held back during the handshake; later emits go out at once."""
        for event, args in self.take_held():
            await self.emit(event, *args)

    async def join(self, room: str) -> None:
        await self.server.enter_room(self.id, room, namespace=self.namespace)

    async def leave(self, room: str) -> None:
        await self.server.leave_room(self.id, room, namespace=self.namespace)

    def to(self, room: str) -> AsyncRoomEmitter:
        return AsyncRoomEmitter(self, room)

    @property
    def broadcast(self) -> AsyncRoomEmitter:
        return AsyncRoomEmitter(self, None)

    async def disconnect(self) -> None:
        await self.server.disconnect(self.id, namespace=self.namespace)


class AsyncConnection(ConnectionState):
    """A connected socket: its context, the task running its connection chain, and the
    events that task and the handlers wait on."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.decided = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.task: asyncio.Future[None] | None = None


class AsyncFrameworkNamespace(NamespaceCore, socketio.AsyncNamespace):
    """Every event of one namespace, awaited through its middleware chains to its routes."""

    def __init__(self, app: AppCore, name: str, settings: NamespaceConfig) -> None:
        socketio.AsyncNamespace.__init__(self, name)
        NamespaceCore.__init__(self, app, name, settings)

    async def trigger_event(self, event: str, *args: Any) -> Any:
        handler, arguments = self.dispatch(event, args)
        return await handler(*arguments)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        server = self.app.sio
        for plugin in self.plugins:
            self.check_refusal(plugin, await settle(plugin.refuse(sid, auth)), sid)
        socket = AsyncSocketHandle(server, sid, self.namespace)
        session = await settle(self.app.sessions.load(environ))
        conn = AsyncConnection(self.new_context(socket, environ, auth, session))
        self.new_connection(conn)
        # The chain lives as long as the connection: its after-halves run at disconnect.
        conn.task = server.start_background_task(self._run_connection_chain, conn)
        await conn.decided.wait()
        self.check_accepted(conn)
        await run_steps(self.connected_steps(conn))
        # Held emits go out after the CONNECT reply, which python-socketio queues as soon as
        # this handler returns, before this task runs.
        server.start_background_task(socket.release)
        return True

    async def _run_connection_chain(self, conn: AsyncConnection) -> None:
        async def accept_and_wait() -> None:
            conn.accepted = True
            conn.decided.set()
            await conn.disconnected.wait()

        try:
            await run_chain_async(self.connection_chain(conn.ctx.socket.id), conn.ctx,
                                  accept_and_wait)
        except asyncio.CancelledError:  # the server is shutting down
            raise
        except BaseException as exc:  # a refusal, or an after-half failing at disconnect
            self.chain_ended(conn, exc)
        finally:
            conn.decided.set()

    async def on_disconnect(self, sid: str, reason: Any) -> None:
        found = self.disconnect_steps(sid, reason)
        if found is None:
            return
        conn, steps = found
        await run_steps(steps)
        conn.disconnected.set()

    async def on_packet(self, event: str, sid: str, args: tuple[Any, ...]) -> Any:
        not_handled = self.app.sio.not_handled
        ctx = self.packet_context(sid, event, args)
        if ctx is None:
            return not_handled
        handler = self.handler_for(event)
        result: list[Any] = []

        async def run_controller() -> None:
            if handler is not None:
                result.append(await settle(handler(ctx)))

        try:
            await run_chain_async(self.packet_layers, ctx, run_controller)
        except NextNotCalled as exc:
            self.dropped(ctx, exc)
            return not_handled
        except Exception as exc:
            payload, steps = self.failed(ctx, exc)
            await ctx.socket.emit("error", payload)
            await run_steps(steps)
            return not_handled
        return self.answer(ctx, handler, result, not_handled)


class AsyncFrameworkServer(socketio.AsyncServer):
    """socketio.AsyncServer whose socket ids come from ``io.generate_id(environ)`` when
    configured (see :class:`.ids.CustomIds`), claimed on the asyncio manager's Redis: an id
    already in use, here or on another worker, is refused before the socket exists."""

    def __init__(
        self, id_generator: Callable[[dict[str, Any]], str] | None, owner: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.ids = CustomIds(id_generator, self)
        self.claims = AsyncIdClaims(self, owner)

    async def _handle_connect(self, eio_sid: str, namespace: str, data: Any) -> None:
        if self.ids.generator is None:
            await super()._handle_connect(eio_sid, namespace, data)
            return
        namespace = namespace or "/"
        try:
            sid, restored = self.ids.choose(self, eio_sid, namespace)
            if not await self.claims.claim(namespace, sid, take_over=restored):
                raise id_in_use(sid)
        except Exception as exc:
            await self._send_packet(eio_sid, self.packet_class(
                socketio.packet.CONNECT_ERROR, data=self.ids.refusal(namespace, exc),
                namespace=namespace))
            return
        try:
            with self.ids.pending(sid):
                await super()._handle_connect(eio_sid, namespace, data)
        finally:
            if not self.manager.is_connected(sid, namespace):
                await self.claims.release(namespace, sid)  # refused by its middleware


class AsyncApplication(AppCore):
    """``app`` on asyncio: a ``socketio.AsyncServer`` behind a ``socketio.ASGIApp``, for one
    worker (see the module docstring for what the asyncio engine adds)."""

    namespace_class = AsyncFrameworkNamespace
    awaits = True
    http_kind = "ASGI"

    def make_server(self, owner: str) -> AsyncFrameworkServer:
        return AsyncFrameworkServer(self.config.generate_id, owner, async_mode="asgi",
                                    **server_options(self.config))

    def mount_http(self, http_app: Callable[..., Any] | None) -> None:
        self.asgi_app: Callable[..., Any] = socketio.ASGIApp(
            self.sio, http_app, socketio_path=self.config.init.get("path", "socket.io"))
        for plugin in self.plugins:
            if (type(plugin).wrap_wsgi is not Plugin.wrap_wsgi
                    and type(plugin).wrap_asgi is Plugin.wrap_asgi):
                raise BootError(f"the {plugin.name} plugin serves HTTP through wrap_wsgi only: "
                                "it needs wrap_asgi on the asyncio engine")
            self.asgi_app = plugin.wrap_asgi(self.asgi_app)

    def make_sessions(self, redis_url: str | None) -> AsyncSessionLoader:
        url = session_redis_url(self.config, redis_url)
        client = None if url is None else asyncio_client(url)
        return AsyncSessionLoader(self.config, client, log)


def load_async_app_dir(
    app_dir: str,
    env: str | None,
    redis_url: str | None = None,
    owner: str = "sioctl",
    redis_channel: str = "socketio",
    plugins: tuple[PluginFactory, ...] = (),
) -> AsyncApplication:
    """``application.load_app_dir`` for asyncio: the app in ``app_dir`` on an AsyncServer;
    raises BootError with one line."""
    app = load_app(AsyncApplication, app_dir, env, redis_url, owner, redis_channel, plugins)
    assert isinstance(app, AsyncApplication)
    return app
