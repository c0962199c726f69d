"""An app directory turned into a socketio.Server: config, middleware, controllers, routes."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import redis
import socketio

from sioctl.worker.errors import BootError

from .config import AppConfig, ConfigError, NamespaceConfig, load_config
from .context import Context, SocketHandle
from .controller import ControllerTree, load_controllers
from .ids import IdClaims
from .loading import load_module
from .middleware import Middleware, NextNotCalled, load_factories, run_chain
from .plugins import Plugin, PluginFactory
from .session import SessionLoader

log = logging.getLogger("sioctl.app")

ROUTER_FILE = os.path.join("app", "router.py")
HTTP_FILE = os.path.join("app", "http.py")
SYSTEM_EVENTS = {"disconnect", "disconnecting", "error"}
Handler = Callable[[Context], Any]


class NamespaceRouter:
    """``app.io.of(name)``: the routes of one namespace."""

    def __init__(self, app: Application, name: str) -> None:
        self.app = app
        self.name = name
        self.routes: dict[str, Handler] = {}

    def route(self, event: str, handler: Handler) -> None:
        """Send ``event`` packets of this namespace to ``handler(ctx)`` (a controller action)."""
        if not isinstance(event, str) or not event:
            raise BootError(f"{ROUTER_FILE}: event names are non-empty strings, got {event!r}")
        if not callable(handler):
            raise BootError(f"{ROUTER_FILE}: the handler of {event!r} on {self.name!r} is not "
                            f"callable: {handler!r}")
        if self.name not in self.app.config.namespaces:
            raise BootError(
                f"{ROUTER_FILE}: route {event!r} on namespace {self.name!r}, which io.namespace "
                f"does not configure (configured: {', '.join(self.app.config.namespaces)})"
            )
        if event in self.routes:
            raise BootError(f"{ROUTER_FILE}: event {event!r} on {self.name!r} is routed twice")
        self.routes[event] = handler


class IoRouter:
    """``app.io``: routes (``route``/``of``) and the app's controllers."""

    def __init__(self, app: Application, controller: ControllerTree) -> None:
        self.controller = controller
        self._app = app
        self.namespaces: dict[str, NamespaceRouter] = {}

    def of(self, namespace: str) -> NamespaceRouter:
        if namespace not in self.namespaces:
            self.namespaces[namespace] = NamespaceRouter(self._app, namespace)
        return self.namespaces[namespace]

    def route(self, event: str, handler: Handler) -> None:
        """Route ``event`` of the default namespace ``/``."""
        self.of("/").route(event, handler)


class Connection:
    """A connected socket: its context and the thread running its connection middleware."""

    def __init__(self, ctx: Context, server: socketio.Server) -> None:
        self.ctx = ctx
        self.decided = server.eio.create_event()
        self.disconnected = server.eio.create_event()
        self.accepted = False
        self.refusal: BaseException | None = None


class FrameworkNamespace(socketio.Namespace):
    """Every event of one namespace goes through its middleware chains to its routes."""

    def __init__(self, app: Application, name: str, settings: NamespaceConfig) -> None:
        super().__init__(name)
        self.app = app
        self.connection_layers = app.middleware_layers(settings.connection_middleware, name,
                                                       "connection_middleware")
        self.packet_layers = app.middleware_layers(settings.packet_middleware, name,
                                                   "packet_middleware")
        self.connections: dict[str, Connection] = {}
        self.plugins = [plugin for plugin in app.plugins if plugin.namespace == name]
        # Events the plugins serve where the app routes none (the first plugin wins).
        self.plugin_routes: dict[str, Handler] = {}
        for plugin in reversed(self.plugins):
            self.plugin_routes.update(plugin.routes())

    def trigger_event(self, event: str, *args: Any) -> Any:
        if event == "connect":
            return self.on_connect(*args)
        if event == "disconnect":
            return self.on_disconnect(args[0], args[1] if len(args) > 1 else None)
        return self.on_packet(event, args[0], args[1:])

    @property
    def routes(self) -> dict[str, Handler]:
        router = self.app.io.namespaces.get(self.namespace)
        return router.routes if router else {}

    def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        server = self.app.sio
        for plugin in self.plugins:
            refusal = plugin.refuse(sid, auth)
            if refusal is not None:
                log.info("%s %s refused by the %s: %s", self.namespace, sid, plugin.name, refusal)
                raise socketio.exceptions.ConnectionRefusedError(refusal)
        socket = SocketHandle(server, sid, self.namespace)
        ctx = Context(self.app, socket, environ, auth, self.app.sessions.load(environ))
        conn = Connection(ctx, server)
        self.connections[sid] = conn
        server.start_background_task(self._run_connection_chain, conn)
        conn.decided.wait()
        if not conn.accepted:
            self.connections.pop(sid, None)
            reason = conn.refusal
            if isinstance(reason, NextNotCalled):
                message = f"connection refused: {reason}"
            else:
                message = str(reason) or type(reason).__name__
            log.info("%s %s refused: %s", self.namespace, sid, message)
            raise socketio.exceptions.ConnectionRefusedError(message)
        for plugin in self.plugins:
            plugin.connected(conn.ctx)
        self.app.watch_redis_back()
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
            run_chain(self.connection_layers, conn.ctx, accept_and_wait)
        except BaseException as exc:  # a refusal, or an after-half failing at disconnect
            if not conn.accepted:
                conn.refusal = exc
            else:
                log.exception("connection middleware of %s failed after disconnect",
                              self.namespace)
        finally:
            conn.decided.set()

    def on_disconnect(self, sid: str, reason: Any) -> None:
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        ctx = conn.ctx.for_packet("disconnect", (reason,))
        for event in ("disconnecting", "disconnect"):
            handler = self.routes.get(event)
            if handler is not None:
                try:
                    handler(ctx)
                except Exception:
                    log.exception("%s handler of %s failed", event, self.namespace)
        for plugin in self.plugins:
            plugin.disconnected(sid)
        self.app.sio.claims.release(self.namespace, sid)
        conn.disconnected.set()

    def on_packet(self, event: str, sid: str, args: tuple[Any, ...]) -> Any:
        conn = self.connections.get(sid)
        if conn is None:
            return self.app.sio.not_handled
        ctx = conn.ctx.for_packet(event, args)
        handler = None
        if event not in SYSTEM_EVENTS:
            handler = self.routes.get(event) or self.plugin_routes.get(event)
        result: list[Any] = []

        def run_controller() -> None:
            if handler is not None:
                result.append(handler(ctx))

        try:
            run_chain(self.packet_layers, ctx, run_controller)
        except NextNotCalled as exc:
            log.debug("%s %s: packet %r dropped: %s", self.namespace, sid, event, exc)
            return self.app.sio.not_handled
        except Exception as exc:
            self._report(ctx, exc)
            return self.app.sio.not_handled
        if handler is None:
            return self.app.sio.not_handled
        if ctx.acked:
            return ctx.ack_values
        return result[0] if result else None

    def _report(self, ctx: Context, exc: Exception) -> None:
        """An exception while handling a packet: the log once, the client an ``error`` event."""
        log.error("%s %s: event %r failed: %s: %s", self.namespace, ctx.socket.id, ctx.event,
                  type(exc).__name__, exc, exc_info=exc)
        ctx.socket.emit("error", {"message": str(exc) or type(exc).__name__, "event": ctx.event})
        handler = self.routes.get("error")
        if handler is not None:
            ctx.error = exc
            try:
                handler(ctx)
            except Exception:
                log.exception("error handler of %s failed", self.namespace)


class FrameworkServer(socketio.Server):
    """socketio.Server whose socket ids come from ``io.generate_id(environ)`` when configured.

    python-socketio asks ``eio.generate_id()`` (no arguments) for a new socket id while it
    handles a CONNECT packet; this server knows which handshake that is and hands the
    generator its environ. An id already in use, here or on another worker (see ids.py), is
    refused before the socket exists.
    """

    def __init__(
        self, id_generator: Callable[[dict[str, Any]], str] | None, owner: str, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.id_generator = id_generator
        self.claims = IdClaims(self, owner)
        self._pending_id = threading.local()
        if id_generator is not None:
            default = self.eio.generate_id
            self.eio.generate_id = lambda: getattr(self._pending_id, "value", None) or default()

    def _handle_connect(self, eio_sid: str, namespace: str, data: Any) -> None:
        if self.id_generator is None:
            super()._handle_connect(eio_sid, namespace, data)
            return
        namespace = namespace or "/"
        try:
            sid = self.id_generator(self.environ.get(eio_sid, {}))
            if not isinstance(sid, str) or not sid:
                raise ValueError(f"io.generate_id returned {sid!r}, not a non-empty string")
            in_use = sid in self.manager.rooms.get(namespace, {}).get(None, {})
            if in_use or not self.claims.claim(namespace, sid):
                raise ValueError(f"socket id {sid!r} is already in use")
        except Exception as exc:
            log.warning("refusing a connection to %s: %s", namespace, exc)
            self._send_packet(eio_sid, self.packet_class(
                socketio.packet.CONNECT_ERROR, data={"message": str(exc)}, namespace=namespace))
            return
        self._pending_id.value = sid
        try:
            super()._handle_connect(eio_sid, namespace, data)
        finally:
            self._pending_id.value = None
            if not self.manager.is_connected(sid, namespace):
                self.claims.release(namespace, sid)  # refused by its middleware


class Application:
    """``app`` as the router, middleware factories and controllers see it."""

    def __init__(
        self,
        config: AppConfig,
        redis_url: str | None = None,
        owner: str = "sioctl",
        redis_channel: str = "socketio",
        plugins: tuple[PluginFactory, ...] = (),
    ) -> None:
        self.config = config
        self.app_dir = config.app_dir
        # The Redis the app's parts share: io.redis, else the cluster's (None: no Redis).
        self.redis_url = config.redis_url or redis_url
        self.redis_channel = redis_channel
        self.sio = FrameworkServer(config.generate_id, owner, **server_options(config))
        self.factories = load_factories(self.app_dir)
        self.plugins: list[Plugin] = [
            plugin for plugin in (factory(self) for factory in plugins) if plugin is not None]
        self.wsgi_app: Callable[..., Any] = socketio.WSGIApp(
            self.sio, self._http_app(), socketio_path=config.init.get("path", "socket.io")
        )
        for plugin in self.plugins:
            self.wsgi_app = plugin.wrap_wsgi(self.wsgi_app)
        self._watching_redis = False
        self.io = IoRouter(self, load_controllers(self.app_dir))
        self.sessions = SessionLoader(config, session_redis(config, redis_url), log)

    def watch_redis_back(self) -> None:
        """Have the socket id claims renewed and the plugins' ``redis_back`` called whenever the
        manager is back on a Redis that may have lost everything.

        Called at the first connection: the worker installs its manager after the app loads."""
        if self._watching_redis:
            return
        self._watching_redis = True
        hooks = getattr(self.sio.manager, "when_redis_back", None)
        if hooks is not None:
            hooks.append(self.sio.claims.renew)
            hooks.extend(plugin.redis_back for plugin in self.plugins)

    def _http_app(self) -> Callable[..., Any] | None:
        """The app's own HTTP side: ``app/http.py``'s ``http(app)`` returns a WSGI app that
        serves every request outside the socket.io path (pages, login views, APIs)."""
        path = os.path.join(self.app_dir, HTTP_FILE)
        if not os.path.isfile(path):
            return None
        factory = getattr(load_module(self.app_dir, path), "http", None)
        if not callable(factory):
            raise BootError(f"{HTTP_FILE}: define http(app) returning a WSGI application")
        try:
            wsgi_app = factory(self)
        except Exception as exc:
            raise BootError(f"{HTTP_FILE}: http(app) failed: {type(exc).__name__}: {exc}") from exc
        if not callable(wsgi_app):
            raise BootError(f"{HTTP_FILE}: http(app) must return a WSGI application")
        return wsgi_app

    def middleware_layers(
        self, names: list[str], namespace: str, kind: str
    ) -> list[tuple[str, Middleware]]:
        layers = []
        for name in names:
            factory = self.factories.get(name)
            if factory is None:
                known = ", ".join(sorted(self.factories)) or "none"
                where = self.config.where(f"io.namespace.{namespace}.{kind}")
                raise BootError(f"{where}: unknown middleware {name!r} (app/io/middleware "
                                f"has: {known})")
            try:
                middleware = factory(self)
            except Exception as exc:
                raise BootError(f"app/io/middleware/{name}.py: {name}(app) failed: "
                                f"{type(exc).__name__}: {exc}") from exc
            if not callable(middleware):
                raise BootError(f"app/io/middleware/{name}.py: {name}(app) must return "
                                "middleware(ctx, next)")
            layers.append((name, middleware))
        return layers

    def setup(self) -> None:
        """Run app/router.py's setup(app), then register every configured namespace."""
        router_path = os.path.join(self.app_dir, ROUTER_FILE)
        if os.path.isfile(router_path):
            module = load_module(self.app_dir, router_path)
            setup = getattr(module, "setup", None)
            if not callable(setup):
                raise BootError(f"{ROUTER_FILE}: define setup(app)")
            try:
                setup(self)
            except BootError as exc:
                message = str(exc)
                prefix = "" if message.startswith(ROUTER_FILE) else f"{ROUTER_FILE}: "
                raise BootError(prefix + message) from exc
            except Exception as exc:
                raise BootError(f"{ROUTER_FILE}: setup(app) failed: {type(exc).__name__}: "
                                f"{exc}") from exc
        for name, settings in self.config.namespaces.items():
            self.sio.register_namespace(FrameworkNamespace(self, name, settings))



def session_redis(config: AppConfig, redis_url: str | None) -> redis.Redis | None:
    """The Redis client of a Redis-backed session store (None for cookie sessions)."""
    if config.session_store != "redis":
        return None
    url = config.redis_url or redis_url
    if not url:
        raise BootError(f"{config.where('session.store')}: a 'redis' session store needs a "
                        "Redis: set io.redis or pass --redis")
    return redis.Redis.from_url(url)


def server_options(config: AppConfig) -> dict[str, Any]:
    """socketio.Server keyword arguments from ``io.init``."""
    init = config.init
    options: dict[str, Any] = {"async_mode": "eventlet"}
    renames = {
        "ping_interval": "ping_interval",
        "ping_timeout": "ping_timeout",
        "max_http_buffer_size": "max_http_buffer_size",
        "transports": "transports",
        "allow_upgrades": "allow_upgrades",
        "http_compression": "http_compression",
        "cookie": "cookie",
    }
    for key, option in renames.items():
        if key in init:
            options[option] = init[key]
    if "cors" in init:
        cors = init["cors"]
        options["cors_allowed_origins"] = "*" if cors is True else ([] if cors is False else cors)
    return options


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
    try:
        config = load_config(app_dir, env)
    except ConfigError as exc:
        raise BootError(str(exc)) from exc
    app = Application(config, redis_url, owner, redis_channel, plugins)
    app.setup()
    return app
