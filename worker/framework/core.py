"""The framework's engine-free core, as python-socketio's ``base_server`` is to ``Server`` and
``AsyncServer``.

:class:`AppCore` is ``app``: the configuration, the middleware factories, the plugins and their
order, the route table, the app's ``router.py`` and ``http.py``, and when the plugins hear that
Redis is back. :class:`NamespaceCore` holds one namespace's decisions: which plugin refuses a
handshake, what a refused connection is told, how a ctx is built, which handler an event gets,
what a packet answers, what is logged, and the steps of a disconnect in their order.

At run time neither calls a handler, a middleware or a hook, nor talks to a server: a shell
does, by plain calls on eventlet (``application.py``) or by awaiting on asyncio (``aio.py``). At
load, AppCore calls the app's factories, ``setup(app)`` and ``http(app)``: plain functions on
either engine. A shell supplies
:meth:`AppCore.make_server`, :meth:`AppCore.mount_http`, :meth:`AppCore.make_sessions` and its
``namespace_class`` (a ``NamespaceCore`` mixed into python-socketio's ``Namespace`` or
``AsyncNamespace``), and runs the :class:`Step` lists the core hands it.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from socketio.exceptions import ConnectionRefusedError

from sioctl.worker.errors import BootError

from .config import AppConfig, ConfigError, NamespaceConfig, load_config
from .context import Context
from .controller import load_controllers
from .loading import load_module
from .middleware import Middleware, load_factories
from .onion import NextNotCalled, refusal_message
from .plugins import ASYNC_HOOKS, Plugin, PluginFactory
from .routing import ROUTER_FILE, Handler, IoRouter, handler_for, plugin_routes

log = logging.getLogger("sioctl.app")

HTTP_FILE = os.path.join("app", "http.py")


@dataclass(frozen=True)
class Step:
    """One call a shell makes, in the order the core lists them; ``call()`` may return an
    awaitable (the async shell awaits it). A ``guarded`` step's exception is logged as
    "<what> failed" and the next step runs; any other step's exception propagates."""

    what: str
    call: Callable[[], Any]
    guarded: bool = False

    def failed(self, exc: Exception) -> None:
        """The step raised ``exc``: logged when the step is guarded, raised again if not."""
        if not self.guarded:
            raise exc
        log.error("%s failed", self.what, exc_info=exc)


class ConnectionState:
    """A socket that reached its connection middleware: its ctx, and whether the middleware
    accepted it or why it refused (the shells add the events or futures they wait on)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.accepted = False
        self.refusal: BaseException | None = None


class NamespaceCore:
    """The decisions of one namespace (see the module docstring); mixed in before
    python-socketio's ``Namespace`` / ``AsyncNamespace`` by the shells."""

    namespace: str

    def __init__(self, app: AppCore, name: str, settings: NamespaceConfig) -> None:
        self.app = app
        self.namespace = name
        self.connection_layers = app.middleware_layers(settings.connection_middleware, name,
                                                       "connection_middleware")
        self.packet_layers = app.middleware_layers(settings.packet_middleware, name,
                                                   "packet_middleware")
        self.connections: dict[str, Any] = {}
        self.plugins = [plugin for plugin in app.plugins if plugin.namespace == name]
        # Events the plugins serve where the app routes none (the first plugin wins).
        self.plugin_routes: dict[str, Handler] = plugin_routes(self.plugins)

    def dispatch(self, event: str, args: tuple[Any, ...]) -> tuple[Callable[..., Any],
                                                                   tuple[Any, ...]]:
        """The shell's handler of what python-socketio triggers, and its arguments:
        ``on_connect(sid, environ, auth)``, ``on_disconnect(sid, reason)`` (no reason from
        older callers) or ``on_packet(event, sid, args)``."""
        if event == "connect":
            return self.on_connect, args
        if event == "disconnect":
            return self.on_disconnect, (args[0], args[1] if len(args) > 1 else None)
        return self.on_packet, (event, args[0], args[1:])

    # The shell's handlers, plain on eventlet, coroutines on asyncio.
    on_connect: Callable[..., Any]
    on_disconnect: Callable[..., Any]
    on_packet: Callable[..., Any]

    @property
    def routes(self) -> dict[str, Handler]:
        """The app's own routes on this namespace (``app/router.py``)."""
        return self.app.io.routes_of(self.namespace)

    # ------------------------------------------------------------------------- connect

    def check_refusal(self, plugin: Plugin, reason: str | None, sid: str) -> None:
        """``plugin.refuse`` said ``reason``: raises ConnectionRefusedError (sent to the client
        as ``connect_error``) unless it is None. The shell asks each plugin in order and stops
        at the first refusal."""
        if reason is not None:
            log.info("%s %s refused by the %s: %s", self.namespace, sid, plugin.name, reason)
            raise ConnectionRefusedError(reason)

    def new_connection(self, state: ConnectionState) -> None:
        """Remember ``state`` while its connection middleware decides (and after)."""
        self.connections[state.ctx.socket.id] = state

    def new_context(self, socket: Any, environ: dict[str, Any], auth: Any,
                    session: dict[str, Any]) -> Context:
        """The connection's ctx, on the shell's socket handle."""
        return Context(self.app, socket, environ, auth, session)

    def chain_ended(self, state: ConnectionState, exc: BaseException) -> None:
        """The connection chain raised: a refusal before it accepted, an after-half failing
        at disconnect after (logged)."""
        if not state.accepted:
            state.refusal = exc
        else:
            log.error("connection middleware of %s failed after disconnect", self.namespace,
                      exc_info=exc)

    def check_accepted(self, state: ConnectionState) -> None:
        """The connection chain has decided: raises ConnectionRefusedError with the message of
        :func:`.onion.refusal_message` (and forgets the socket) unless it accepted."""
        if state.accepted:
            return
        sid = state.ctx.socket.id
        self.connections.pop(sid, None)
        message = refusal_message(state.refusal)
        log.info("%s %s refused: %s", self.namespace, sid, message)
        raise ConnectionRefusedError(message)

    def connected_steps(self, state: ConnectionState) -> list[Step]:
        """What follows an accepted connection: each plugin's ``connected(ctx)`` in order,
        then the Redis-back hooks registered (at the first connection: the worker installs
        its manager after the app loads). The held emits go out after the CONNECT reply."""
        ctx = state.ctx
        steps = [Step(f"{plugin.name} connected", _bind(plugin.connected, ctx))
                 for plugin in self.plugins]
        steps.append(Step("watch redis back", self.app.watch_redis_back))
        return steps

    # ---------------------------------------------------------------------- disconnect

    def disconnect_steps(
        self, sid: str, reason: Any
    ) -> tuple[Any, list[Step]] | None:
        """Forget ``sid`` and list what its disconnect runs, in order: the app's
        ``disconnecting`` and ``disconnect`` routes (a failure logged), each plugin's
        ``disconnected(sid)``, the release of its socket id. None for a socket this namespace
        never accepted; else the shell's own ConnectionState, whose connection chain's
        after-halves the shell lets run after the steps."""
        state = self.connections.pop(sid, None)
        if state is None:
            return None
        ctx = state.ctx.for_packet("disconnect", (reason,))
        steps = [Step(f"{event} handler of {self.namespace}", _bind(handler, ctx), guarded=True)
                 for event in ("disconnecting", "disconnect")
                 if (handler := self.routes.get(event)) is not None]
        steps += [Step(f"{plugin.name} disconnected", _bind(plugin.disconnected, sid))
                  for plugin in self.plugins]
        steps.append(Step("id release", lambda: self.app.sio.claims.release(self.namespace,
                                                                            sid)))
        return state, steps

    # ------------------------------------------------------------------------- packets

    def packet_context(self, sid: str, event: str, args: tuple[Any, ...]) -> Context | None:
        """The ctx of one packet from ``sid``; None when ``sid`` is not connected here (the
        shell answers "not handled")."""
        state = self.connections.get(sid)
        return None if state is None else state.ctx.for_packet(event, args)

    def handler_for(self, event: str) -> Handler | None:
        """The handler of ``event`` here (see :func:`.routing.handler_for`)."""
        return handler_for(event, self.routes, self.plugin_routes)

    def answer(self, ctx: Context, handler: Handler | None, result: list[Any],
               not_handled: Any) -> Any:
        """What python-socketio sends back for a packet the chain ran through: nothing
        (``not_handled``) when no handler served it, else ``ctx.ack(...)``'s values when the
        handler acked, else what the handler returned."""
        if handler is None:
            return not_handled
        if ctx.acked:
            return ctx.ack_values
        return result[0] if result else None

    def dropped(self, ctx: Context, exc: NextNotCalled) -> None:
        """A packet middleware skipped ``next()``: the packet gets no answer (logged)."""
        log.debug("%s %s: packet %r dropped: %s", self.namespace, ctx.socket.id, ctx.event, exc)

    def failed(self, ctx: Context, exc: Exception) -> tuple[dict[str, Any], list[Step]]:
        """A packet's middleware or handler raised: logged once here; returns the payload of
        the ``error`` event the shell sends the client first, then the steps of the app's
        ``error`` route (with ``ctx.error`` set)."""
        log.error("%s %s: event %r failed: %s: %s", self.namespace, ctx.socket.id, ctx.event,
                  type(exc).__name__, exc, exc_info=exc)
        payload = {"message": str(exc) or type(exc).__name__, "event": ctx.event}
        handler = self.routes.get("error")
        if handler is None:
            return payload, []
        ctx.error = exc
        return payload, [Step(f"error handler of {self.namespace}", _bind(handler, ctx),
                              guarded=True)]


def _bind(function: Callable[[Any], Any], argument: Any) -> Callable[[], Any]:
    return lambda: function(argument)


class AppCore:
    """``app`` as the router, middleware factories, controllers and plugins see it.

    A shell subclass supplies the server (:meth:`make_server`), the web app around it
    (:meth:`mount_http`), the session loader (:meth:`make_sessions`) and ``namespace_class``;
    this class builds them in this order: server, middleware factories, plugins, web app (the
    app's ``http.py`` inside, each plugin's HTTP endpoints in front), controllers and routes,
    sessions. :meth:`setup` then runs ``router.py`` and registers the namespaces.
    """

    #: The shell's namespace class: NamespaceCore mixed into (Async)Namespace.
    namespace_class: Callable[[AppCore, str, NamespaceConfig], Any]
    #: Whether the shell awaits hooks (the sync shell refuses ``async def`` plugin hooks).
    awaits = False
    #: What ``app/http.py``'s ``http(app)`` must return on this engine.
    http_kind = "WSGI"

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
        self.sio: Any = self.make_server(owner)
        self.factories = load_factories(self.app_dir)
        self.plugins: list[Plugin] = self.load_plugins(plugins)
        self.mount_http(self.http_app())
        self._watching_redis = False
        self.io = IoRouter(config.namespaces, load_controllers(self.app_dir))
        self.sessions: Any = self.make_sessions(redis_url)

    # ------------------------------------------------------------------ the shell's part

    def make_server(self, owner: str) -> Any:
        """The socket.io server, with ``claims`` (socket id claims owned by ``owner``)."""
        raise NotImplementedError

    def mount_http(self, http_app: Callable[..., Any] | None) -> None:
        """Build the engine's web app: the server at ``io.init.path``, ``http_app`` for the
        rest, the plugins' endpoints in front."""
        raise NotImplementedError

    def make_sessions(self, redis_url: str | None) -> Any:
        """The loader whose ``load(environ)`` gives each connection's session."""
        raise NotImplementedError

    # ---------------------------------------------------------------------- the core's part

    def load_plugins(self, factories: tuple[PluginFactory, ...]) -> list[Plugin]:
        """The plugins the app's config turns on, in the order of ``factories`` (which is the
        order their hooks run in). Raises BootError for a plugin with ``async def`` hooks on a
        shell that does not await them."""
        plugins = [plugin for plugin in (factory(self) for factory in factories)
                   if plugin is not None]
        if not self.awaits:
            for plugin in plugins:
                found = [hook for hook in ASYNC_HOOKS
                         if inspect.iscoroutinefunction(getattr(plugin, hook))]
                if found:
                    raise BootError(f"the {plugin.name} plugin defines async hooks "
                                    f"({', '.join(found)}): it needs the asyncio engine")
        return plugins

    def http_app(self) -> Callable[..., Any] | None:
        """The app's own HTTP side: ``app/http.py``'s ``http(app)`` returns a WSGI (ASGI on
        asyncio) app that serves every request outside the socket.io path (pages, login
        views, APIs); None without that file. Raises BootError naming the file."""
        path = os.path.join(self.app_dir, HTTP_FILE)
        if not os.path.isfile(path):
            return None
        kind = self.http_kind
        factory = getattr(load_module(self.app_dir, path), "http", None)
        if not callable(factory):
            raise BootError(f"{HTTP_FILE}: define http(app) returning a {kind} application")
        try:
            web_app = factory(self)
        except Exception as exc:
            raise BootError(f"{HTTP_FILE}: http(app) failed: {type(exc).__name__}: {exc}") from exc
        if not callable(web_app):
            raise BootError(f"{HTTP_FILE}: http(app) must return a {kind} application")
        return web_app

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

    def middleware_layers(
        self, names: list[str], namespace: str, kind: str
    ) -> list[tuple[str, Middleware]]:
        """The configured middleware of ``namespace``'s ``kind`` chain, outermost first, each
        made by its factory now. Raises BootError naming the config key or the file."""
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
            self.sio.register_namespace(self.namespace_class(self, name, settings))


def load_app(
    shell: type[AppCore],
    app_dir: str,
    env: str | None,
    redis_url: str | None = None,
    owner: str = "sioctl",
    redis_channel: str = "socketio",
    plugins: tuple[PluginFactory, ...] = (),
) -> AppCore:
    """The app in ``app_dir`` for ``env``, built by ``shell`` and set up; raises BootError
    with one line (a config mistake names its file and key)."""
    try:
        config = load_config(app_dir, env)
    except ConfigError as exc:
        raise BootError(str(exc)) from exc
    app = shell(config, redis_url, owner, redis_channel, plugins)
    app.setup()
    return app


def server_options(config: AppConfig) -> dict[str, Any]:
    """Server keyword arguments from ``io.init`` (the shell adds its ``async_mode``)."""
    init = config.init
    options: dict[str, Any] = {}
    for key in ("ping_interval", "ping_timeout", "max_http_buffer_size", "transports",
                "allow_upgrades", "http_compression", "cookie"):
        if key in init:
            options[key] = init[key]
    if "cors" in init:
        cors = init["cors"]
        options["cors_allowed_origins"] = "*" if cors is True else ([] if cors is False else cors)
    return options


def checked_id(sid: Any) -> str:
    """What ``io.generate_id(environ)`` returned, if it is a usable socket id; ValueError
    (the client's ``connect_error`` message) otherwise."""
    if not isinstance(sid, str) or not sid:
        raise ValueError(f"io.generate_id returned {sid!r}, not a non-empty string")
    return sid


def id_in_use(sid: str) -> ValueError:
    """The refusal of an id that is connected here or claimed by another worker."""
    return ValueError(f"socket id {sid!r} is already in use")
