"""The framework's engine-free core, as python-socketio's ``base_server`` is to ``Server`` and
``AsyncServer``: :class:`AppCore` here, :class:`.namespace.NamespaceCore` per namespace, the
onion's rules (:mod:`.onion`), the route table (:mod:`.routing`), ctx (:mod:`.context`).

:class:`AppCore` is ``app``: the configuration, the middleware factories, the plugins and their
order, the route table, the app's ``router.py`` and ``http.py``, and when the plugins hear that
Redis is back. At run time the core neither calls a handler, a middleware or a hook, nor talks
to a server: a shell does, by plain calls on eventlet (``application.py``) or by awaiting on
asyncio (``aio.py``). At load, AppCore calls the app's factories, ``setup(app)`` and
``http(app)``: plain functions on either engine. A shell supplies :meth:`AppCore.make_server`,
:meth:`AppCore.mount_http`, :meth:`AppCore.make_sessions` and its ``namespace_class`` (a
``NamespaceCore`` mixed into python-socketio's ``Namespace`` or ``AsyncNamespace``).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from typing import Any

from sioctl.worker.errors import BootError

from .config import AppConfig, ConfigError, NamespaceConfig, load_config
from .controller import load_controllers
from .loading import load_module
from .middleware import Middleware, load_factories
from .plugins import ASYNC_HOOKS, Plugin, PluginFactory
from .routing import ROUTER_FILE, IoRouter

log = logging.getLogger("sioctl.app")

HTTP_FILE = os.path.join("app", "http.py")


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

    def refuse_coroutine(self, function: Any, what: str) -> None:
        """On a shell that does not await (eventlet), raise BootError naming the file and the
        function when ``function`` (a middleware, a routed action or route) is ``async def``:
        called there, it would only make a coroutine that never runs."""
        if self.awaits:
            return
        found = coroutine_function(function)
        if found is None:
            return
        code = found.__code__
        where = code.co_filename
        if os.path.abspath(where).startswith(os.path.abspath(self.app_dir) + os.sep):
            where = os.path.relpath(where, self.app_dir)
        raise BootError(f"{where}: {found.__qualname__} ({what}) is async def, which the "
                        "eventlet engine never awaits: serve this app with the asyncio engine "
                        "(-k asyncio), or make it a plain def")

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
            self.refuse_coroutine(middleware, f"middleware {name!r}")
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
        for namespace, router in self.io.namespaces.items():
            for event, handler in router.routes.items():
                self.refuse_coroutine(handler, f"routed to {event!r} on {namespace!r}")
        for plugin in self.plugins:
            for event, handler in plugin.routes().items():
                self.refuse_coroutine(handler, f"the {plugin.name} plugin's {event!r} route")
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


def session_redis_url(config: AppConfig, redis_url: str | None) -> str | None:
    """The Redis of a Redis-backed session store (io.redis, else the cluster's); None for
    cookie sessions. Raises BootError naming the key when the store has no Redis."""
    if config.session_store != "redis":
        return None
    url = config.redis_url or redis_url
    if not url:
        raise BootError(f"{config.where('session.store')}: a 'redis' session store needs a "
                        "Redis: set io.redis or pass --redis")
    return url


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


def coroutine_function(handler: Any) -> Any:
    """The ``async def`` function behind ``handler`` (a function, a controller action, an
    object whose ``__call__`` is async), or None when calling it runs its code."""
    function = getattr(handler, "function", handler)  # a controller Action: what the app wrote
    call = None if inspect.isroutine(function) else type(function).__dict__.get("__call__")
    for candidate in (function, call):
        if inspect.iscoroutinefunction(candidate) and hasattr(candidate, "__code__"):
            return candidate
    return None


def checked_id(sid: Any) -> str:
    """What ``io.generate_id(environ)`` returned, if it is a usable socket id; ValueError
    (the client's ``connect_error`` message) otherwise."""
    if not isinstance(sid, str) or not sid:
        raise ValueError(f"io.generate_id returned {sid!r}, not a non-empty string")
    return sid


def id_in_use(sid: str) -> ValueError:
    """The refusal of an id that is connected here or claimed by another worker."""
    return ValueError(f"socket id {sid!r} is already in use")
