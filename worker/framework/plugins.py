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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .context import Context

if TYPE_CHECKING:
    from .application import Application

Handler = Callable[[Context], Any]
WSGIApp = Callable[..., Any]


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

    def redis_back(self) -> None:
        """The cluster's Redis is back after an outage and may have lost everything: write
        again at once what this plugin keeps there (called in a background task, only once a
        socket of its namespace has connected)."""


PluginFactory = Callable[["Application"], "Plugin | None"]
