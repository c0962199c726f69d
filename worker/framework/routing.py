"""The route table (``app.io``) and the dispatch decision, whatever the engine.

``app/router.py``'s ``setup(app)`` fills the table with ``app.io.route(event, handler)`` and
``app.io.of(namespace).route(...)``; each namespace then asks :func:`handler_for` which handler
an incoming event gets. Neither half calls a handler: the sync and async shells do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sioctl.worker.errors import BootError

from .controller import ControllerTree

if TYPE_CHECKING:
    from .config import NamespaceConfig
    from .context import Context
    from .plugins import Plugin

ROUTER_FILE = os.path.join("app", "router.py")
# Events python-socketio or the framework raise itself: a client sending one reaches no route.
SYSTEM_EVENTS = frozenset({"disconnect", "disconnecting", "error"})
Handler = Callable[["Context"], Any]


class NamespaceRouter:
    """``app.io.of(name)``: the routes of one namespace."""

    def __init__(self, namespaces: Mapping[str, NamespaceConfig], name: str) -> None:
        self._configured = namespaces
        self.name = name
        self.routes: dict[str, Handler] = {}

    def route(self, event: str, handler: Handler) -> None:
        """Send ``event`` packets of this namespace to ``handler(ctx)`` (a controller action).

        Raises BootError for an empty event name, a handler that is not callable, a namespace
        that ``io.namespace`` does not configure, or an event routed twice."""
        if not isinstance(event, str) or not event:
            raise BootError(f"{ROUTER_FILE}: event names are non-empty strings, got {event!r}")
        if not callable(handler):
            raise BootError(f"{ROUTER_FILE}: the handler of {event!r} on {self.name!r} is not "
                            f"callable: {handler!r}")
        if self.name not in self._configured:
            raise BootError(
                f"{ROUTER_FILE}: route {event!r} on namespace {self.name!r}, which io.namespace "
                f"does not configure (configured: {', '.join(self._configured)})"
            )
        if event in self.routes:
            raise BootError(f"{ROUTER_FILE}: event {event!r} on {self.name!r} is routed twice")
        self.routes[event] = handler


class IoRouter:
    """``app.io``: routes (``route``/``of``) and the app's controllers."""

    def __init__(self, namespaces: Mapping[str, NamespaceConfig],
                 controller: ControllerTree) -> None:
        self.controller = controller
        self._configured = namespaces
        self.namespaces: dict[str, NamespaceRouter] = {}

    def of(self, namespace: str) -> NamespaceRouter:
        """The routes of ``namespace`` (created empty on first use)."""
        if namespace not in self.namespaces:
            self.namespaces[namespace] = NamespaceRouter(self._configured, namespace)
        return self.namespaces[namespace]

    def route(self, event: str, handler: Handler) -> None:
        """Route ``event`` of the default namespace ``/``."""
        self.of("/").route(event, handler)

    def routes_of(self, namespace: str) -> dict[str, Handler]:
        """The app's own routes on ``namespace`` ({} when it routes none there)."""
        router = self.namespaces.get(namespace)
        return router.routes if router else {}


def plugin_routes(plugins: list[Plugin]) -> dict[str, Handler]:
    """The events ``plugins`` serve, each by the first plugin (in registration order) that
    serves it."""
    routes: dict[str, Handler] = {}
    for plugin in reversed(plugins):
        routes.update(plugin.routes())
    return routes


def handler_for(event: str, app_routes: Mapping[str, Handler],
                plugin_routes: Mapping[str, Handler]) -> Handler | None:
    """The handler of an incoming ``event``: the app's route, else a plugin's; None for a
    system event (a client cannot trigger ``disconnect`` or ``error`` routes) or an event
    nobody routes (the packet still goes through the packet middleware, then gets no ack)."""
    if event in SYSTEM_EVENTS:
        return None
    return app_routes.get(event) or plugin_routes.get(event)
