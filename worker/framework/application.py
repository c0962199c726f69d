"""An app directory turned into a socketio.Server: the eventlet (sync) shell of the framework.

Everything the framework decides lives in :mod:`.core` and :mod:`.namespace` (and :mod:`.onion`,
:mod:`.routing`, :mod:`.context`); this module makes those decisions happen with plain calls on
green threads: it calls the middleware, handlers and plugin hooks, waits on events, and talks to
a ``socketio.Server``. ``aio.py`` is the same shell for asyncio.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
import socketio

from sioctl.worker.redis_clients import blocking_client

from .config import AppConfig, NamespaceConfig
from .context import SocketHandle
from .core import AppCore, id_in_use, load_app, session_redis_url
from .core import server_options as core_server_options
from .ids import CustomIds, IdClaims
from .middleware import NextNotCalled, run_chain
from .namespace import ConnectionState, NamespaceCore, Step
from .plugins import PluginFactory
from .session import SessionLoader

log = logging.getLogger("sioctl.app")


def run_steps(steps: list[Step]) -> None:
    """Call ``steps`` in order; a guarded step's failure is logged and the next one runs."""
    for step in steps:
        try:
            step.call()
        except Exception as exc:
            step.failed(exc)


class Connection(ConnectionState):
    """A connected socket: its context and the events its connection chain's thread uses."""

    def __init__(self, ctx: Any, server: socketio.Server) -> None:
        super().__init__(ctx)
        self.decided = server.eio.create_event()
        self.disconnected = server.eio.create_event()


class FrameworkNamespace(NamespaceCore, socketio.Namespace):
    """Every event of one namespace goes through its middleware chains to its routes."""

    def __init__(self, app: AppCore, name: str, settings: NamespaceConfig) -> None:
        socketio.Namespace.__init__(self, name)
        NamespaceCore.__init__(self, app, name, settings)

    def trigger_event(self, event: str, *args: Any) -> Any:
        handler, arguments = self.dispatch(event, args)
        return handler(*arguments)

    def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        server = self.app.sio
        for plugin in self.plugins:
            self.check_refusal(plugin, plugin.refuse(sid, auth), sid)
        socket = SocketHandle(server, sid, self.namespace)
        ctx = self.new_context(socket, environ, auth, self.app.sessions.load(environ))
        conn = Connection(ctx, server)
        self.new_connection(conn)
        server.start_background_task(self._run_connection_chain, conn)
        conn.decided.wait()
        self.check_accepted(conn)
        run_steps(self.connected_steps(conn))
        # Emits made by the middleware go out once python-socketio has sent the CONNECT reply,
        # which it does right after this handler returns.
        server.start_background_task(socket.release)
        return True

    def _run_connection_chain(self, conn: Connection) -> None:
        def accept_and_wait() -> None:
            conn.accepted = True
            conn.decided.set()
            conn.disconnected.wait()

        try:
            run_chain(self.connection_chain(conn.ctx.socket.id), conn.ctx, accept_and_wait)
        except BaseException as exc:  # a refusal, or an after-half failing at disconnect
            self.chain_ended(conn, exc)
        finally:
            conn.decided.set()

    def on_disconnect(self, sid: str, reason: Any) -> None:
        found = self.disconnect_steps(sid, reason)
        if found is None:
            return
        conn, steps = found
        run_steps(steps)
        conn.disconnected.set()

    def on_packet(self, event: str, sid: str, args: tuple[Any, ...]) -> Any:
        not_handled = self.app.sio.not_handled
        ctx = self.packet_context(sid, event, args)
        if ctx is None:
            return not_handled
        handler = self.handler_for(event)
        result: list[Any] = []

        def run_controller() -> None:
            if handler is not None:
                result.append(handler(ctx))

        try:
            run_chain(self.packet_layers, ctx, run_controller)
        except NextNotCalled as exc:
            self.dropped(ctx, exc)
            return not_handled
        except Exception as exc:
            payload, steps = self.failed(ctx, exc)
            ctx.socket.emit("error", payload)
            run_steps(steps)
            return not_handled
        return self.answer(ctx, handler, result, not_handled)


class FrameworkServer(socketio.Server):
    """socketio.Server whose socket ids come from ``io.generate_id(environ)`` when configured
    (see :class:`.ids.CustomIds`): an id already in use, here or on another worker, is refused
    before the socket exists."""

    def __init__(
        self, id_generator: Callable[[dict[str, Any]], str] | None, owner: str, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.ids = CustomIds(id_generator, self)
        self.claims = IdClaims(self, owner)

    def _handle_connect(self, eio_sid: str, namespace: str, data: Any) -> None:
        if self.ids.generator is None:
            super()._handle_connect(eio_sid, namespace, data)
            return
        namespace = namespace or "/"
        try:
            sid, restored = self.ids.choose(self, eio_sid, namespace)
            if not self.claims.claim(namespace, sid, take_over=restored):
                raise id_in_use(sid)
        except Exception as exc:
            self._send_packet(eio_sid, self.packet_class(
                socketio.packet.CONNECT_ERROR, data=self.ids.refusal(namespace, exc),
                namespace=namespace))
            return
        try:
            with self.ids.pending(sid):
                super()._handle_connect(eio_sid, namespace, data)
        finally:
            if not self.manager.is_connected(sid, namespace):
                self.claims.release(namespace, sid)  # refused by its middleware


class Application(AppCore):
    """``app`` on eventlet: a :class:`FrameworkServer` behind a ``socketio.WSGIApp``."""

    namespace_class = FrameworkNamespace

    def make_server(self, owner: str) -> FrameworkServer:
        return FrameworkServer(self.config.generate_id, owner, **server_options(self.config))

    def mount_http(self, http_app: Callable[..., Any] | None) -> None:
        self.wsgi_app: Callable[..., Any] = socketio.WSGIApp(
            self.sio, http_app, socketio_path=self.config.init.get("path", "socket.io"))
        for plugin in self.plugins:
            self.wsgi_app = plugin.wrap_wsgi(self.wsgi_app)

    def make_sessions(self, redis_url: str | None) -> SessionLoader:
        return SessionLoader(self.config, session_redis(self.config, redis_url), log)


def session_redis(config: AppConfig, redis_url: str | None) -> redis.Redis | None:
    """The Redis client of a Redis-backed session store (None for cookie sessions)."""
    url = session_redis_url(config, redis_url)
    return None if url is None else blocking_client(url)


def server_options(config: AppConfig) -> dict[str, Any]:
    """socketio.Server keyword arguments from ``io.init``."""
    return {"async_mode": "eventlet", **core_server_options(config)}


def load_app_dir(
    app_dir: str,
    env: str | None,
    redis_url: str | None = None,
    owner: str = "sioctl",
    redis_channel: str = "socketio",
    plugins: tuple[PluginFactory, ...] = (),
) -> Application:
    """Load and set up the app in ``app_dir`` for ``env``; raises BootError with one line.

    ``redis_url`` is the cluster's Redis (from --redis or the embedded one), used by a
    Redis-backed session store when io.redis does not name one. ``owner`` names this worker's
    slot cluster-wide (host, cluster title, slot): it owns the custom socket ids it hands out.
    ``redis_channel`` is the cluster's Redis channel (plugins prefix their Redis keys with it).
    ``plugins`` are factories ``factory(app)`` of the plugins the app's config may turn on.
    """
    app = load_app(Application, app_dir, env, redis_url, owner, redis_channel, plugins)
    assert isinstance(app, Application)
    return app
