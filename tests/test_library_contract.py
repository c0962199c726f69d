"""The library contract (worker/library_contract.py) holds on the installed libraries, and lists
everything sioctl touches.

One test per entry: the member exists where the entry says, a callable has the parameter names
the entry gives, an instance attribute is there on a real object, and a data layout holds on
small real objects (a socketio.Server that a polling client connects to, eventlet.wsgi serving
one connection...). An upgrade that changes any of them fails in the test named after the hook.

The checks run in a child interpreter (this file run as a script): they need eventlet, and the
test process must not import it (eventlet hooks fork() in any process that imported it).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sioctl.worker import library_contract as contract
from sioctl.worker.library_contract import HOOKS, Hook

ROOT = Path(__file__).resolve().parent.parent

# sioctl's source folders and their import names.
PACKAGES = {"worker": "sioctl.worker", "cluster": "sioctl.cluster", "cli": "sioctl.cli",
            "sioctl": "sioctl"}
# Private names of the standard library that sioctl uses (not part of the contract).
STDLIB_PRIVATE = {"_exit", "_debugmallocstats"}
# Members of library classes that sioctl's subclasses and mixins use and that are documented
# API (so not part of the contract), by the class that defines them.
DOCUMENTED = {
    # python-socketio's API reference: Server.sleep, start_background_task; eio, manager and
    # logger hold what its constructor documents (client_manager, logger).
    "socketio.server:Server": {"sleep", "start_background_task", "eio", "manager", "logger"},
    # python-engineio's API reference: Server.create_event; logger and ping_timeout are
    # constructor arguments.
    "engineio.server:Server": {"create_event", "logger", "ping_timeout"},
    # http.server.BaseHTTPRequestHandler's documented attributes, which HttpProtocol keeps.
    "eventlet.wsgi:HttpProtocol": {"rfile", "server"},
    "eventlet.wsgi:Input": {"read"},  # the WSGI input stream
}
# sioctl's own names that happen to be private names of a library class too.
OWN_NAMES: dict[str, str] = {
    "_send": "Gateway._send (worker/gateway/plugin.py), not RFC6455WebSocket._send",
}


# ------------------------------------------------------------------------------ the checks
# (run in the child interpreter)


def _import_libraries() -> None:
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet  # noqa: F401
    import eventlet.hubs.hub  # noqa: F401
    import eventlet.websocket  # noqa: F401
    import eventlet.wsgi  # noqa: F401
    import gunicorn.app.base  # noqa: F401


def resolve(target: str) -> Any:
    """The object at ``module:Qual.name``; raises AttributeError or ImportError."""
    module, _, path = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def param_names(func: Any) -> tuple[str, ...]:
    """Parameter names of ``func`` as the contract writes them (no self)."""
    names = []
    for param in inspect.signature(func).parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            names.append(f"*{param.name}")
        elif param.kind is param.VAR_KEYWORD:
            names.append(f"**{param.name}")
        else:
            names.append(param.name)
    if names and names[0] == "self":
        names = names[1:]
    return tuple(names)


def wsgi_call(app: Any, method: str, query: str, body: bytes = b"") -> tuple[str, bytes, dict]:
    """One WSGI request to ``app``; returns (status, body, environ)."""
    import io

    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": "/socket.io/", "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "text/plain", "wsgi.url_scheme": "http", "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
    }
    status: list[str] = []
    chunks = app(environ, lambda s, headers, exc_info=None: status.append(s))
    return status[0], b"".join(chunks), environ


def sio_server(**kwargs: Any) -> Any:
    import socketio

    return socketio.Server(async_mode="threading", **kwargs)


def eio_server() -> Any:
    import engineio

    return engineio.Server(async_mode="threading")


def eio_app(eio: Any) -> Any:
    import engineio

    return engineio.WSGIApp(eio, engineio_path="socket.io")


def connected_client(sio: Any) -> tuple[str, dict]:
    """A polling session connected to "/" of ``sio``; returns (eio_sid, handshake environ)."""
    import socketio

    app = socketio.WSGIApp(sio)
    status, body, environ = wsgi_call(app, "GET", "EIO=4&transport=polling")
    assert status.startswith("200"), (status, body)
    eio_sid = json.loads(body.decode()[1:])["sid"]
    status, body, _ = wsgi_call(app, "POST", f"EIO=4&transport=polling&sid={eio_sid}", b"40")
    assert status.startswith("200"), (status, body)
    return eio_sid, environ


def check_sockets_layout() -> None:
    from engineio.socket import Socket

    stored: list[tuple[str, Any]] = []

    class Recording(dict):
        def __setitem__(self, sid: str, session: Any) -> None:
            stored.append((sid, session))
            super().__setitem__(sid, session)

    eio = eio_server()
    eio.sockets = Recording()
    status, body, _ = wsgi_call(eio_app(eio), "GET", "EIO=4&transport=polling")
    assert status.startswith("200"), status
    assert len(stored) == 1, f"sessions stored by item assignment: {stored}"
    assert type(stored[0][1]) is Socket, f"stored {type(stored[0][1])!r}, not Socket"
    assert eio.sockets[stored[0][0]] is stored[0][1]


def check_eio_handlers() -> None:
    sio = sio_server()
    for event in ("connect", "message", "disconnect"):
        handler = sio.eio.handlers.get(event)
        assert getattr(handler, "__self__", None) is sio, f"{event}: {handler!r}"
        assert handler.__name__ == f"_handle_eio_{event}", f"{event}: {handler.__name__}"


def check_open_packet_first() -> None:
    from engineio import packet

    first: list[Any] = []
    eio = eio_server()
    create_queue = eio.create_queue

    class Queue:
        def __init__(self, queue: Any) -> None:
            self.queue = queue

        def put(self, item: Any, *args: Any, **kwargs: Any) -> Any:
            first.append(item)
            return self.queue.put(item, *args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.queue, name)

    eio.create_queue = lambda *a, **k: Queue(create_queue(*a, **k))
    wsgi_call(eio_app(eio), "GET", "EIO=4&transport=polling")
    assert first, "nothing was put on a queue from create_queue"
    assert first[0].packet_type == packet.OPEN, f"first packet: {first[0].packet_type}"
    assert "pingInterval" in first[0].data, first[0].data


def check_last_ping() -> None:
    from engineio.socket import Socket

    eio = eio_server()
    started: list[Any] = []
    eio.start_background_task = lambda fn, *a, **k: started.append(fn)
    session = Socket(eio, "sid")
    assert session.last_ping, f"last_ping at construction: {session.last_ping!r}"
    session.schedule_ping()
    assert session.last_ping is None and len(started) == 1, (session.last_ping, started)
    session.schedule_ping()  # a cycle is running: no second one
    assert len(started) == 1, started


def check_logger(name: str) -> Callable[[], None]:
    def check() -> None:
        module = name.split(".")[0] + ".base_server"
        logger = importlib.import_module(module).default_logger
        assert logger.name == name, logger.name

    return check


def check_binary_packet() -> None:
    import socketio

    sio = sio_server()
    eio_sid, _ = connected_client(sio)
    header = b'451-["upload",{"_placeholder":true,"num":0}]'
    status, _, _ = wsgi_call(socketio.WSGIApp(sio), "POST",
                             f"EIO=4&transport=polling&sid={eio_sid}", header)
    assert status.startswith("200"), status
    pending = sio._binary_packet.get(eio_sid)
    assert pending is not None, f"_binary_packet: {sio._binary_packet!r}"
    assert pending.attachment_count == 1, pending.attachment_count


def check_sio_environ() -> None:
    sio = sio_server()
    eio_sid, environ = connected_client(sio)
    assert sio.environ.get(eio_sid) is environ, sorted(sio.environ)


def check_rooms() -> None:
    sio = sio_server()
    eio_sid, _ = connected_client(sio)
    members = sio.manager.rooms["/"][None]
    assert list(members.values()) == [eio_sid], members
    sid = next(iter(members))
    assert sio.manager.sid_from_eio_sid(eio_sid, "/") == sid


def check_pubsub_messages() -> None:
    import socketio

    sent: list[dict] = []

    class Capture(socketio.PubSubManager):
        def _publish(self, data: Any) -> None:
            sent.append(data)

    manager = Capture()
    sio_server(client_manager=manager)
    manager.emit("ev", 1, room="r", namespace="/")
    manager.disconnect("s1", "/")
    manager.enter_room("s1", "/", "r")
    manager.leave_room("s1", "/", "r")
    manager._handle_emit({"event": "ev", "data": 1, "namespace": "/", "room": None,
                          "callback": ("sid", "/", 7), "host_id": "other"})
    by_method = {message.get("method"): message for message in sent}
    assert {"emit", "disconnect", "enter_room", "leave_room"} <= set(by_method), sent
    assert by_method["emit"]["room"] == "r" and by_method["emit"]["namespace"] == "/"
    for method in ("disconnect", "enter_room", "leave_room"):
        assert by_method[method]["sid"] == "s1", by_method[method]
    for message in sent:
        assert message.get("host_id"), message
    if "callback" in by_method:  # only when a callback was asked for
        assert by_method["callback"]["host_id"] == "other", by_method["callback"]


class _NoListener:
    family = 0

    def getsockname(self) -> str:
        return "contract"


def served_connection(requests: bytes, close_in_app: bool = False) -> tuple[Any, bytes]:
    """Serve ``requests`` on one connection with eventlet.wsgi.Server.process_request, as the
    worker does; returns (the protocol instance, what the client received)."""
    import eventlet
    import eventlet.wsgi
    from eventlet.green import socket

    seen: list[Any] = []
    marker = object()

    def app(environ: dict, start_response: Any) -> list[bytes]:
        if close_in_app:
            seen[-1].conn_state[2] = eventlet.wsgi.STATE_CLOSE
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    class Probe(eventlet.wsgi.HttpProtocol):
        def handle_one_request(self) -> None:
            if not seen:
                seen.append(self)
            super().handle_one_request()

        def get_environ(self) -> Any:
            environ = super().get_environ()
            self.probe_input = environ["eventlet.input"]
            return environ

    server = eventlet.wsgi.Server(_NoListener(), ("", 0), app, protocol=Probe, keepalive=True,
                                  log_output=False, debug=False,
                                  url_length_limit=eventlet.wsgi.MAX_REQUEST_LINE)
    ours, theirs = socket.socketpair()
    theirs.sendall(requests)
    theirs.shutdown(socket.SHUT_WR)
    state = [("127.0.0.1", 1), ours, eventlet.wsgi.STATE_IDLE, marker]
    with eventlet.Timeout(5):
        server.process_request(state)
        received = b""
        while chunk := theirs.recv(65536):
            received += chunk
    proto = seen[0]
    assert proto.conn_state is state and state[3] is marker, "conn_state is not our list"
    return proto, received


def check_process_request() -> None:
    import eventlet.wsgi

    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    proto, received = served_connection(request * 2)
    assert received.count(b"HTTP/1.1 200") == 2, received
    assert isinstance(proto.probe_input, eventlet.wsgi.Input), type(proto.probe_input)
    # STATE_CLOSE set while a request is served: no second request on the connection.
    _, received = served_connection(request * 2, close_in_app=True)
    assert received.count(b"HTTP/1.1 200") == 1, received


def instance_of(class_target: str) -> Any:
    """A small real instance of a library class (``module:Class``, under any module that
    exports it), for its instance attributes."""
    import engineio
    import eventlet.hubs.hub
    import eventlet.wsgi
    import socketio
    from engineio.socket import Socket

    cls = resolve(class_target)
    if cls is engineio.Server:
        return eio_server()
    if cls is Socket:
        return Socket(eio_server(), "sid")
    if cls is socketio.Server:
        return sio_server()
    if cls is socketio.PubSubManager:
        manager = socketio.PubSubManager()
        sio_server(client_manager=manager)
        return manager
    if cls is socketio.WSGIApp:
        return socketio.WSGIApp(sio_server())
    if cls is eventlet.wsgi.Server:
        return eventlet.wsgi.Server(_NoListener(), ("", 0), lambda e, s: [])
    if cls is eventlet.wsgi.HttpProtocol:
        return served_connection(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")[0]
    if cls is eventlet.hubs.hub.BaseHub:
        from eventlet.hubs import get_hub

        return get_hub()
    raise LookupError(f"no instance factory for {class_target} in tests/test_library_contract.py")


LAYOUTS: dict[str, Callable[[], None]] = {
    "engineio:Server.sockets (layout)": check_sockets_layout,
    "engineio:Server.handlers (layout)": check_eio_handlers,
    "engineio.base_server:default_logger (layout)": check_logger("engineio.server"),
    "engineio.socket:Socket.queue (layout)": check_open_packet_first,
    "engineio.socket:Socket.last_ping (layout)": check_last_ping,
    "socketio:Server._binary_packet (layout)": check_binary_packet,
    "socketio:Server.environ (layout)": check_sio_environ,
    "socketio.base_server:default_logger (layout)": check_logger("socketio.server"),
    "socketio:PubSubManager.rooms (layout)": check_rooms,
    "socketio:PubSubManager._publish (layout)": check_pubsub_messages,
    "eventlet.wsgi:Server.process_request (layout)": check_process_request,
}


def check_hook(hook: Hook) -> str:
    """What is wrong with ``hook`` on the installed libraries ("" when nothing)."""
    try:
        if hook.kind == contract.LAYOUT:
            if hook.id not in LAYOUTS:
                return "no layout check for it in tests/test_library_contract.py"
            LAYOUTS[hook.id]()
            return ""
        try:
            member = resolve(hook.target)
        except AttributeError:
            if hook.params is not None or len(hook.path) < 2:
                raise
            owner = hook.target.rsplit(".", 1)[0]
            member = getattr(instance_of(owner), hook.name)  # an instance attribute
        if hook.params is not None:
            found = param_names(member)
            if found != hook.params:
                return f"parameters {found}, the contract relies on {hook.params}"
        return ""
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def library_private_names() -> dict[str, str]:
    """Private member names of the library classes the contract names -> one such class."""
    names: dict[str, str] = {}
    for hook in HOOKS:
        if len(hook.path) < 2:
            continue
        owner = hook.target.rsplit(".", 1)[0]
        try:
            cls = resolve(owner)
        except (AttributeError, ImportError):
            continue
        if not inspect.isclass(cls):
            continue
        members = set(dir(cls))
        try:
            members |= set(vars(instance_of(owner)))
        except LookupError:
            pass
        for name in members:
            if name.startswith("_") and not name.startswith("__"):
                names.setdefault(name, owner)
    return names


def library_overrides() -> list[dict[str, str]]:
    """Every method a sioctl class defines that its library class also has: the class, the
    method, the library class (by its base classes, or MIXINS for a mixin)."""
    found = []
    for path, tree in _sources():
        imports = _import_map(path, tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            qualified = f"{_module_of(path)}:{node.name}"
            library_class = _library_class_of(qualified, node, imports)
            if library_class is None:
                continue
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                        and not item.name.startswith("__") and hasattr(library_class, item.name):
                    found.append({"class": qualified, "method": item.name,
                                  "library": _target_of(library_class),
                                  "mro": [_target_of(c) for c in library_class.__mro__]})
    return found


def library_attribute_uses() -> list[dict[str, str]]:
    """Every attribute of its library class that a sioctl subclass or mixin uses through
    ``self`` (or ``server``, the mixins' typed alias of self) without defining it itself."""
    found = []
    for path, tree in _sources():
        imports = _import_map(path, tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            qualified = f"{_module_of(path)}:{node.name}"
            library_class = _library_class_of(qualified, node, imports)
            if library_class is None:
                continue
            own = {item.name for item in node.body
                   if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
            own |= {target.id for item in node.body if isinstance(item, ast.AnnAssign)
                    for target in [item.target] if isinstance(target, ast.Name)}
            own |= {target.id for item in node.body if isinstance(item, ast.Assign)
                    for target in item.targets if isinstance(target, ast.Name)}
            try:
                instance_attributes = set(vars(instance_of(_target_of(library_class))))
            except LookupError:
                instance_attributes = set()
            seen = set()
            for use in ast.walk(node):
                if isinstance(use, ast.Attribute) and isinstance(use.value, ast.Name) \
                        and use.value.id in ("self", "server") and use.attr not in own \
                        and not use.attr.startswith("__") and use.attr not in seen \
                        and (hasattr(library_class, use.attr)
                             or use.attr in instance_attributes):
                    seen.add(use.attr)
                    found.append({"class": qualified, "attribute": use.attr,
                                  "library": _target_of(library_class),
                                  "mro": [_target_of(c) for c in library_class.__mro__]})
    return found


def _library_class_of(qualified: str, node: ast.ClassDef, imports: dict[str, str]) -> Any:
    """The library class a sioctl class extends (by its bases, or MIXINS), or None."""
    if qualified in contract.MIXINS:
        return resolve(contract.MIXINS[qualified])
    for base in node.bases:
        found = _library_class_in(_resolve_base(base, imports))
        if found is not None:
            return found
    return None


def unlisted_mixins() -> list[str]:
    """sioctl classes that call super() for a method none of their bases has: mixins meant
    for a library class, which must be named in MIXINS."""
    found = []
    for path, tree in _sources():
        imports = _import_map(path, tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            qualified = f"{_module_of(path)}:{node.name}"
            supers = {call.func.attr for call in ast.walk(node)
                      if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                      and isinstance(call.func.value, ast.Call)
                      and isinstance(call.func.value.func, ast.Name)
                      and call.func.value.func.id == "super"}
            supers = {name for name in supers if not name.startswith("__")}
            if not supers or qualified in contract.MIXINS:
                continue
            bases = [_resolve_base(base, imports) for base in node.bases]
            if any(base is None for base in bases) or any(map(_library_class_in, bases)):
                continue  # a library subclass: its overrides are checked by the hooks
            if not all(any(hasattr(base, name) for base in bases) for name in supers):
                found.append(qualified)
    return found


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    parts[0] = PACKAGES[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_map(path: Path, tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted path, from every import in the file (nested ones included)."""
    package = _module_of(path).rsplit(".", 1)[0] if path.name != "__init__.py" \
        else _module_of(path)
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = \
                    alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                names[alias.asname or alias.name] = f"{base}.{alias.name}"
    names.setdefault("__module__", _module_of(path))
    return names


def _resolve_base(expr: ast.expr, imports: dict[str, str]) -> Any:
    """The class a base-class expression names, or None when it cannot be resolved."""
    dotted = ast.unparse(expr)
    head, _, rest = dotted.partition(".")
    if head in imports:
        dotted = imports[head] + (f".{rest}" if rest else "")
    else:
        dotted = f"{imports['__module__']}.{dotted}"  # a class of the same module
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for part in parts[split:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return obj if inspect.isclass(obj) else None
    return None


def _library_class_in(cls: Any) -> Any:
    """The first class of a contract library in ``cls``'s method order, or None."""
    if cls is None:
        return None
    for klass in inspect.getmro(cls):
        if klass.__module__.split(".")[0] in contract.LIBRARIES:
            return klass
    return None


def _target_of(cls: Any) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def child_main() -> None:
    """Check everything that needs the libraries imported; print it as JSON."""
    _import_libraries()
    versions = {name: version(name) for name in contract.LIBRARIES.values()}
    owners = {}
    for hook in HOOKS:
        try:
            owner = resolve(hook.target.rsplit(".", 1)[0]) if len(hook.path) > 1 else None
            owners[hook.id] = _target_of(owner) if inspect.isclass(owner) else ""
        except (AttributeError, ImportError):
            owners[hook.id] = ""
    print(json.dumps({
        "versions": versions,
        "owners": owners,
        "problems": {hook.id: check_hook(hook) for hook in HOOKS},
        "private_names": library_private_names(),
        "overrides": library_overrides(),
        "unlisted_mixins": unlisted_mixins(),
        "attribute_uses": library_attribute_uses(),
    }))


# ------------------------------------------------------------------------------ the tests
# (run by pytest; nothing here imports eventlet)

if __name__ != "__main__":
    import pytest

    @pytest.fixture(scope="module", name="checked")
    def checked_fixture() -> dict[str, Any]:
        """The child interpreter's findings (see child_main)."""
        proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True,
                              timeout=60, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result

    @pytest.mark.parametrize("hook", HOOKS, ids=lambda hook: hook.id)
    def test_hook_holds(hook: Hook, checked: dict[str, Any]) -> None:
        """The member exists with the parameters (or the layout) sioctl relies on."""
        problem = checked["problems"][hook.id]
        version = checked["versions"][hook.library]
        assert not problem, (
            f"{hook.library} {version}: {hook.id}, relied on by {', '.join(hook.used_in)}"
            f"{' (' + hook.note + ')' if hook.note else ''}: {problem}")


def test_entries_are_well_formed() -> None:
    ids = [hook.id for hook in HOOKS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for hook in HOOKS:
        assert hook.kind in contract.KINDS, hook
        assert (hook.params is None) == (hook.kind in (contract.ATTRIBUTE, contract.LAYOUT)), hook
        assert hook.used_in, hook
        for where in hook.used_in:
            text = (ROOT / where).read_text()
            if hook.kind != contract.LAYOUT:  # a layout may be relied on without its name
                # The member's name, or its class's (``Socket(server, sid)``).
                assert any(name in text for name in hook.path if name != "__init__"), \
                    f"{hook.id}: not mentioned in {where}"
    for mixin, target in contract.MIXINS.items():
        module, _, name = mixin.partition(":")
        assert hasattr(importlib.import_module(module), name), mixin
        assert any(hook.target.startswith(target + ".") for hook in HOOKS), target


def _private_uses() -> tuple[dict[str, list[str]], dict[str, list[str]], set[str]]:
    """sioctl's private names: (all uses incl. defs and strings, attribute accesses, names
    sioctl defines itself), each use as "path:line"."""
    uses: dict[str, list[str]] = {}
    accesses: dict[str, list[str]] = {}
    defined: set[str] = set()
    for path, tree in _sources():
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
                name = node.name
            elif isinstance(node, ast.Attribute):
                if isinstance(node.ctx, ast.Store):
                    defined.add(node.attr)
                else:
                    accesses.setdefault(node.attr, []).append(f"{where}:{node.lineno}")
                name = node.attr
            elif isinstance(node, ast.Name):
                defined.add(node.id)
                continue
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.isidentifier():
                name = node.value
            else:
                continue
            if name.startswith("_") and not name.startswith("__"):
                uses.setdefault(name, []).append(f"{where}:{node.lineno}")
    accesses = {k: v for k, v in accesses.items() if k.startswith("_") and not
                k.startswith("__")}
    return uses, accesses, defined


def test_every_library_private_name_sioctl_uses_is_listed(checked: dict[str, Any]) -> None:
    """A name private to a library class the contract names (a method, an attribute), used
    anywhere in sioctl (called, overridden, read, or as a string), is in the contract."""
    listed = {hook.name for hook in HOOKS}
    uses, _, _ = _private_uses()
    library = checked["private_names"]
    missing = {name: (library[name], uses[name][:3]) for name in uses
               if name in library and name not in listed and name not in OWN_NAMES}
    assert not missing, f"not in worker/library_contract.py: {missing}"
    _, _, defined = _private_uses()
    assert set(OWN_NAMES) <= defined, "OWN_NAMES lists a name sioctl does not define"


def test_every_private_attribute_not_defined_by_sioctl_is_listed() -> None:
    """``x._name`` where sioctl defines no ``_name`` itself belongs to a library: listed."""
    listed = {hook.name for hook in HOOKS}
    _, accesses, defined = _private_uses()
    missing = {name: where[:3] for name, where in accesses.items()
               if name not in defined and name not in listed and name not in STDLIB_PRIVATE}
    assert not missing, f"not in worker/library_contract.py: {missing}"


def test_every_library_method_sioctl_overrides_is_listed(checked: dict[str, Any]) -> None:
    """A method a sioctl class (or a mixin put on a library class) redefines is listed as an
    override (or patch) of that library class or one of its bases."""
    missing = []
    for found in checked["overrides"]:
        if not any(hook.kind in (contract.OVERRIDE, contract.PATCH)
                   and hook.name == found["method"]
                   and checked["owners"][hook.id] in found["mro"] for hook in HOOKS):
            missing.append(f"{found['class']}.{found['method']} overrides {found['library']}")
    assert not missing, f"not in worker/library_contract.py: {missing}"


def test_every_undocumented_library_attribute_a_subclass_uses_is_listed(
        checked: dict[str, Any]) -> None:
    """What a sioctl subclass or mixin reads from its library class through ``self`` (an
    undocumented attribute like ``Socket.upgrading``, a base-class call like
    ``PubSubManager.is_connected``) is in the contract, unless it is documented API."""
    missing = []
    for use in checked["attribute_uses"]:
        name = use["attribute"]
        if any(name in DOCUMENTED.get(owner, ()) for owner in use["mro"]):
            continue
        if not any(hook.name == name and checked["owners"][hook.id] in use["mro"]
                   for hook in HOOKS):
            missing.append(f"{use['class']} uses {use['library']}.{name}")
    assert not missing, f"not in worker/library_contract.py: {missing}"


def test_every_mixin_names_its_library_class(checked: dict[str, Any]) -> None:
    """A class calling super() for a method no base of its own has is a mixin for a library
    class: MIXINS says which, so its overrides are checked."""
    assert not checked["unlisted_mixins"], checked["unlisted_mixins"]


def test_contract_libraries_are_pinned_both_ways() -> None:
    """Every library in the contract has a lower and an upper bound in pyproject.toml, and
    scripts/lowest_pins.py (what CI installs into .venv-lowest) gives the lower bounds."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    for name in contract.LIBRARIES.values():
        # A minor release cap (<5.19), or gunicorn's next release series (<28: its releases
        # go 23, 24, ...).
        cap = r"[0-9]+" if name == "gunicorn" else r"[0-9]+\.[0-9]+"
        assert re.search(rf'"{name}>=[0-9.]+,<{cap}"', pyproject), f"{name} is not capped"
    proc = subprocess.run([sys.executable, "scripts/lowest_pins.py"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    pins = proc.stdout.split()
    assert {pin.split("==")[0] for pin in pins} == {
        "python-socketio", "python-engineio", "eventlet"}, pins
    for pin in pins:
        name, lowest = pin.split("==")
        assert f'"{name}>={lowest},<' in pyproject, pin


def test_the_scan_sees_the_known_hooks(checked: dict[str, Any]) -> None:
    """The completeness scans find what they must (so an empty result means something)."""
    overridden = {(o["class"].split(":")[1], o["method"]) for o in checked["overrides"]}
    assert ("ConformantSocket", "_upgrade_websocket") in overridden
    assert ("ConformantServerMixin", "_handle_eio_message") in overridden
    assert ("TimedProtocol", "get_environ") in overridden
    assert ("_Loader", "load_config") in overridden
    used = {(u["class"].split(":")[1], u["attribute"]) for u in checked["attribute_uses"]}
    assert ("ConformantSocket", "upgrading") in used
    assert ("SioctlRedisManager", "json") in used
    uses, accesses, _ = _private_uses()
    assert "_log_error_once" in accesses and "_apply_mask" in uses
    assert {"_handle_connect", "_bad_request", "_binary_packet"} <= set(checked["private_names"])


if __name__ == "__main__":
    child_main()
    sys.exit(0)
