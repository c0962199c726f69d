"""Load the user's app from a ``module:attribute`` spec and find the servers in it: its
socketio.Server, and every engineio.Server it serves (a bare one, or one beside socket.io); or,
for the asyncio engine, its socketio.AsyncServer and engineio.AsyncServers; and which engine the
app needs (:func:`engine_of`). Engine-free: the probe and both workers use it."""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import engineio
import socketio

from sioctl.cluster.settings import ASYNCIO, EVENTLET
from sioctl.worker.errors import BootError

# Attribute names that wrappers commonly keep the wrapped app or server under; searched first.
# socketio.WSGIApp keeps the Server as ``engineio_app`` and the other app as ``wsgi_app``,
# Flask keeps middleware as ``wsgi_app``, Flask-SocketIO keeps the Server as ``server``.
WRAPPER_ATTRIBUTES = (
    "engineio_app",
    "wsgi_app",
    "app",
    "application",
    "server",
    "sio",
    "socketio",
    "__wrapped__",
)
SEARCH_DEPTH = 4
# An ASGI framework keeps a mounted app deeper: app -> router -> routes (a list) -> Mount -> app.
ASGI_SEARCH_DEPTH = 6
SEARCH_LIMIT = 500  # objects looked at, so a huge object graph cannot stall the boot


@dataclass
class LoadedApp:
    """What the worker serves: a WSGI callable, the socketio.Server inside it (None for an
    Engine.IO-only app), and every engineio.Server inside it (the socketio.Server's first)."""

    wsgi_app: Callable[..., Any]
    server: socketio.Server | None
    engines: list[engineio.Server] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.server is not None:
            eio = self.server.eio
            self.engines[:] = [eio, *(engine for engine in self.engines if engine is not eio)]


def split_spec(spec: str) -> tuple[str, str, bool]:
    """Split ``module:attr.path`` or ``module:factory()`` into (module, attr path, call it).

    Raises BootError for a spec that does not have that shape.
    """
    module_name, sep, attr = spec.strip().partition(":")
    if not sep:
        attr = "app"
    call = attr.endswith("()")
    if call:
        attr = attr[:-2]
    names = attr.split(".")
    if not module_name or not all(name.isidentifier() for name in names):
        raise BootError(f"cannot load app {spec!r}: expected MODULE:ATTRIBUTE or MODULE:FACTORY()")
    return module_name, attr, call


def load_object(spec: str) -> Any:
    """Import the module named by ``spec`` and return the attribute (or the factory's result)."""
    module_name, attr, call = split_spec(spec)
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:  # a broken module may raise anything, SystemExit included
        raise BootError(f"cannot load app {spec!r}: {_describe(exc)}") from exc
    obj: Any = module
    for name in attr.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise BootError(
                f"cannot load app {spec!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if call:
        if not callable(obj):
            raise BootError(f"cannot load app {spec!r}: {attr!r} is not callable")
        try:
            obj = obj()
        except BaseException as exc:
            raise BootError(f"cannot load app {spec!r}: {attr}() failed: {_describe(exc)}") from exc
    return obj


def find_server(obj: Any) -> socketio.Server | None:
    """The socketio.Server that ``obj`` is or wraps, by a bounded breadth-first search."""
    server, _engines = find_servers(obj)
    return server


def find_servers(obj: Any) -> tuple[socketio.Server | None, list[engineio.Server]]:
    """The first socketio.Server that ``obj`` is or wraps, and every engineio.Server, in the
    order a bounded breadth-first search meets them. (A socketio.Server's own engine.io server
    is among them when the search reaches it.)"""
    return _find(obj, socketio.Server, engineio.Server, sequences=False)


def find_async_servers(
    obj: Any,
) -> tuple[socketio.AsyncServer | None, list[engineio.AsyncServer]]:
    """:func:`find_servers` for the asyncio classes: the first socketio.AsyncServer that ``obj``
    is or wraps (a socketio.ASGIApp, or an ASGI app holding one, mounted routes included), and
    every engineio.AsyncServer."""
    return _find(obj, socketio.AsyncServer, engineio.AsyncServer, sequences=True,
                 depth_limit=ASGI_SEARCH_DEPTH)


def _find(
    obj: Any, server_class: type, engine_class: type, sequences: bool,
    depth_limit: int = SEARCH_DEPTH,
) -> tuple[Any, Any]:
    server: Any = None
    engines: list[Any] = []
    seen: set[int] = set()
    queue: deque[tuple[Any, int]] = deque([(obj, 0)])
    while queue and len(seen) < SEARCH_LIMIT:
        current, depth = queue.popleft()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, server_class) and server is None:
            server = current
        elif isinstance(current, engine_class):
            engines.append(current)
            continue  # its own attributes hold no other server
        if depth >= depth_limit:
            continue
        for child in _children(current, sequences):
            queue.append((child, depth + 1))
    return server, engines


def engine_of(obj: Any) -> tuple[str | None, str]:
    """The worker engine ``obj`` needs, and what it is (for messages): ("asyncio",
    "socketio.AsyncServer") for an AsyncServer or an ASGI app wrapping one, ("eventlet",
    "socketio.Server") for a socketio.Server or a WSGI app wrapping one; (None, why) when it
    holds no server at all."""
    for engine, (server, engines), names in (
        (ASYNCIO, find_async_servers(obj), ("socketio.AsyncServer", "engineio.AsyncServer")),
        (EVENTLET, find_servers(obj), ("socketio.Server", "engineio.Server")),
    ):
        if server is not None or engines:
            found = names[0] if server is not None else names[1]
            if obj is (server or engines[0]):
                return engine, found
            return engine, f"{_name(obj)} holding a {found}"
    return None, "no socketio.Server, socketio.AsyncServer or engineio server in it"


def mismatch(spec: str, what: str, needs: str, worker_class: str) -> BootError:
    """The boot error of an app run on the engine it does not need."""
    article = "an" if what[:1].lower() in "aeiou" else "a"
    return BootError(
        f"cannot load app {spec!r}: it is {article} {what}, which needs the {needs} engine, "
        f"but the worker class is {worker_class} (-k {worker_class}); use -k {needs} or leave "
        "-k out")


def _name(obj: Any) -> str:
    kind = type(obj)
    return f"{kind.__module__.split('.')[0]}.{kind.__qualname__}"


def load_app(spec: str) -> LoadedApp:
    """Load ``spec`` and return what to serve; raises BootError with a one-line message."""
    obj = load_object(spec)
    needs, what = engine_of(obj)
    if needs == ASYNCIO:
        raise mismatch(spec, what, ASYNCIO, EVENTLET)
    server, engines = find_servers(obj)
    if server is None and not engines:
        raise BootError(
            f"cannot load app {spec!r}: no socketio.Server or engineio.Server found in it")
    loaded = LoadedApp(_wsgi_app(obj, server, engines), server, engines)
    for eio in loaded.engines:
        if eio.async_mode != "eventlet":
            kind = "socketio.Server" if server is not None and eio is server.eio \
                else "engineio.Server"
            raise BootError(
                f"cannot load app {spec!r}: its {kind} uses async_mode {eio.async_mode!r}; "
                "sioctl needs async_mode='eventlet'"
            )
    return loaded


def _wsgi_app(
    obj: Any, server: socketio.Server | None, engines: list[engineio.Server]
) -> Callable[..., Any]:
    """What to serve for ``obj``: a bare server (or a holder that is not WSGI, like
    Flask-SocketIO's SocketIO) through python-socketio's or python-engineio's WSGIApp; a WSGI
    app wrapping the servers as it is, with its other routes."""
    if server is not None and (obj is server or not callable(obj)):
        return socketio.WSGIApp(server)
    if server is None and (obj is engines[0] or not callable(obj)):
        return engineio.WSGIApp(engines[0])
    app: Callable[..., Any] = obj
    return app


def _children(obj: Any, sequences: bool = False) -> list[Any]:
    children: list[Any] = []
    if sequences and isinstance(obj, (list, tuple)):
        # Routes of ASGI frameworks (a Starlette Mount holds the ASGIApp) live in lists.
        return [item for item in obj[:SEARCH_LIMIT] if not _is_plain_data(item)]
    for name in WRAPPER_ATTRIBUTES:
        try:
            value = getattr(obj, name, None)
        except Exception:  # a property may raise anything
            continue
        if value is not None:
            children.append(value)
    try:
        namespace = vars(obj)
    except TypeError:
        return children
    if isinstance(namespace, dict):
        children.extend(v for v in namespace.values() if not _is_plain_data(v))
    return children


def _is_plain_data(value: Any) -> bool:
    return value is None or isinstance(value, (str, bytes, int, float, bool, type))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
