"""python-engineio's ASGI routing as a plain call, so a websocket's request keeps no coroutine
of ``ASGIApp.__call__`` suspended for the connection's life.

A websocket's ASGI request lasts as long as the connection: each coroutine on its chain stays
suspended under the idle websocket (~360 bytes for ``engineio.ASGIApp.__call__``;
docs/design.md, "Memory per idle websocket", asyncio third round). :class:`EngineIoRoutes`
takes the app's place in the worker: an Engine.IO request gets the server's
``handle_request(scope, receive, send)`` awaitable itself; everything else (the lifespan,
static files, the other ASGI app, the 404) goes to the app as before.

Re-implemented from python-engineio 4.15's ``ASGIApp.__call__`` routing test (the library
contract lists it as a COPY): used only for ``engineio.ASGIApp`` and ``socketio.ASGIApp``
themselves, not a subclass with a ``__call__`` of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import engineio

from ..protocol.async_asgi import ROUTED_BY_WORKER

AsgiApp = Callable[..., Any]


class EngineIoRoutes:
    """``app`` (an ``engineio.ASGIApp``), with its Engine.IO requests handed straight to its
    server's ``handle_request``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._handle = app.engineio_server.handle_request
        self._path: str | None = app.engineio_path

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        kind = scope["type"]
        if kind in ("http", "websocket") and self._routed(scope["path"]):
            if kind == "websocket":
                scope[ROUTED_BY_WORKER] = True  # nothing of the app's wraps this request
            return self._handle(scope, receive, send)
        return self.app(scope, receive, send)

    def _routed(self, path: str) -> bool:
        """Whether python-engineio's app gives the request to the Engine.IO server."""
        prefix = self._path
        if prefix is None:
            return True
        return (path if path.endswith("/") else path + "/").startswith(prefix)


def engineio_routes(app: AsgiApp) -> AsgiApp:
    """``app`` with :class:`EngineIoRoutes` in front when it is python-engineio's (or
    python-socketio's) ASGI app as it comes and its server has sioctl's async shell (whose
    websocket requests end with None, the result uvicorn wants: python-engineio's own
    websocket returns ``''``, which ``ASGIApp.__call__`` drops); unchanged otherwise."""
    if not isinstance(app, engineio.ASGIApp) or \
            type(app).__call__ is not engineio.ASGIApp.__call__:
        return app
    server = app.engineio_server
    engine = getattr(server, "eio", server)  # a socketio.AsyncServer's, or the engine itself
    if getattr(engine, "_sioctl_translate", None) is None:
        return app
    return EngineIoRoutes(app)
