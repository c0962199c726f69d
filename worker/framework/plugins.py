"""Plugins: subsystems that hook into an app's namespace and HTTP side without the framework
naming them.

A plugin factory ``factory(app)`` returns a :class:`Plugin` when the app's configuration asks
for it, None otherwise; the worker passes its factories to ``load_app_dir`` (the signed-message
gateway is one, turned on by ``socket_config``). The framework then calls the hooks below at the
points where it already runs the app's own middleware and routes; every hook has a no-op default,
so a plugin overrides only what it needs.

Order on one namespace: ``refuse`` (before the connection middleware) → the app's connection
middleware → ``connected`` (once they accepted) → packets → the app's ``disconnecting`` /
``disconnect`` routes → ``disconnected``. A plugin route serves an event the app does not route
itself, inside the namespace's packet middleware like any route.

Engines: on eventlet (the sync shell) every hook is a plain method. On asyncio (the async shell,
``aio.py``) ``refuse``, ``connected``, ``disconnected`` and ``redis_back`` may be ``async def``
and are awaited; a plain one is called as it is, on the event loop (so it must not block: a
hook that does blocking I/O needs an async variant), and whatever it returns is awaited if it is
awaitable. A plugin with an ``async def`` hook is refused when an eventlet app loads
(:data:`ASYNC_HOOKS`). ``routes`` and the web-app wrappers run once, at load, on either engine;
the async shell wraps its ASGI app with ``wrap_asgi`` and refuses a plugin that overrides
``wrap_wsgi`` alone (its HTTP endpoints would silently be missing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .context import Context

if TYPE_CHECKING:
    from .core import AppCore

Handler = Callable[[Context], Any]
WSGIApp = Callable[..., Any]
ASGIApp = Callable[..., Any]

#: The hooks the async shell awaits when they are ``async def``.
ASYNC_HOOKS = ("refuse", "connected", "disconnected", "redis_back")


class Plugin:
    """The hooks a plugin may override (all no-ops here)."""

    #: The plugin's name in log lines ("refused by the <name>").
    name = "plugin"
    #: The namespace whose sockets the plugin sees.
    namespace = "/"

    def refuse(self, sid: str, auth: Any) -> str | None:
        """Why the handshake of ``sid`` must be refused (sent to the client), or None to let
        the app's connection middleware decide."""
        return None

    def connected(self, ctx: Context) -> None:
        """``ctx.socket`` is connected (its connection middleware accepted it); its emits go
        out after the CONNECT reply."""

    def disconnected(self, sid: str) -> None:
        """``sid`` is gone (after the app's disconnect routes)."""

    def routes(self) -> dict[str, Handler]:
        """Events this plugin serves as ``handler(ctx)``, where the app routes none."""
        return {}

    def wrap_wsgi(self, app: WSGIApp) -> WSGIApp:
        """The worker's WSGI application with this plugin's HTTP endpoints in front."""
        return app

    def wrap_asgi(self, app: ASGIApp) -> ASGIApp:
        """The worker's ASGI application (asyncio engine) with this plugin's HTTP endpoints in
        front."""
        return app

    def redis_back(self) -> None:
        """The cluster's Redis is back after an outage and may have lost everything: write
        again at once what this plugin keeps there (called in a background task, only once a
        socket of its namespace has connected)."""


PluginFactory = Callable[["AppCore"], "Plugin | None"]
