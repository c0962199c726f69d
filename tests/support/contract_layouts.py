"""Small real objects of the contract's libraries, and the data-layout checks of the library
contract (worker/library_contract.py): each builds the objects sioctl's code meets (a
socketio.Server a polling client connects to, eventlet.wsgi serving a connection...) and asserts
the shape sioctl relies on. Run in the child interpreter of tests/support/contract_checks.py,
since some import eventlet.
"""

from __future__ import annotations

import importlib
import io
import json
from collections.abc import Callable
from typing import Any


def resolve(target: str) -> Any:
    """The object at ``module:Qual.name``; raises AttributeError or ImportError."""
    module, _, path = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def wsgi_call(app: Any, method: str, query: str, body: bytes = b"") -> tuple[str, bytes, dict]:
    """One WSGI request to ``app``; returns (status, body, environ)."""
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
    """A socketio.Server that needs no eventlet (its layouts are the same)."""
    import socketio

    return socketio.Server(async_mode="threading", **kwargs)


def eio_server() -> Any:
    """An engineio.Server that needs no eventlet."""
    import engineio

    return engineio.Server(async_mode="threading")


def eio_app(eio: Any) -> Any:
    """``eio``'s WSGI app, at /socket.io/ as wsgi_call requests."""
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
    # A plain instance attribute (ConformantEngineMixin's property shadows it).
    assert "sockets" in vars(eio) and not hasattr(type(eio), "sockets"), type(eio).sockets
    eio.sockets = Recording()
    status, body, _ = wsgi_call(eio_app(eio), "GET", "EIO=4&transport=polling")
    assert status.startswith("200"), status
    assert len(stored) == 1, f"sessions stored by item assignment: {stored}"
    assert type(stored[0][1]) is Socket, f"stored {type(stored[0][1])!r}, not Socket"
    assert eio.sockets[stored[0][0]] is stored[0][1]


def check_handle_connect() -> None:
    """A handshake's steps in python-engineio's _handle_connect, in order (the EIO=3 door and
    ConformantEngineMixin change the session's class as it is stored and rely on the rest)."""
    from engineio import packet
    from engineio.socket import Socket

    steps: list[Any] = []

    class Session(Socket):
        def send(self, pkt: Any) -> None:
            steps.append(("send", pkt.packet_type))
            super().send(pkt)

        def schedule_ping(self) -> None:
            steps.append("schedule_ping")

        def poll(self) -> Any:
            steps.append("poll")
            return super().poll()

    class Sessions(dict):
        def __setitem__(self, sid: str, session: Any) -> None:
            assert type(session) is Socket, f"stored {type(session)!r}, not Socket"
            assert session.sid == sid and session.server is eio, (session.sid, sid)
            session.__class__ = Session
            steps.append("stored")
            super().__setitem__(sid, session)

    eio = eio_server()
    eio.sockets = Sessions()
    ok = eio._ok

    def recording_ok(packets: Any = None, **kwargs: Any) -> Any:
        steps.append(("_ok", [pkt.packet_type for pkt in packets or []], sorted(kwargs)))
        return ok(packets, **kwargs)

    eio._ok = recording_ok
    status, body, _ = wsgi_call(eio_app(eio), "GET", "EIO=4&transport=polling")
    assert status.startswith("200"), (status, body)
    assert steps == ["stored", ("send", packet.OPEN), "schedule_ping", "poll",
                     ("_ok", [packet.OPEN], ["headers", "jsonp_index"])], steps


def check_async_websocket() -> None:
    """``_async["websocket"](handler, server)`` is a WSGI app that accepts the websocket and
    runs ``handler(ws)`` (under eventlet, as the worker runs)."""
    import engineio
    import eventlet
    import eventlet.wsgi
    from eventlet.green import socket

    eio = engineio.Server(async_mode="eventlet")
    ran: list[Any] = []

    def handler(ws: Any) -> None:
        ran.append(ws)
        ws.close()

    app = eio._async["websocket"](handler, eio)
    server = eventlet.wsgi.Server(_NoListener(), ("", 0), app, log_output=False, debug=False)
    ours, theirs = socket.socketpair()
    theirs.sendall(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
                   b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   b"Sec-WebSocket-Version: 13\r\n\r\n")
    with eventlet.Timeout(5):
        eventlet.spawn(server.process_request, [("127.0.0.1", 1), ours, eventlet.wsgi.STATE_IDLE])
        received = b""
        while b"\r\n\r\n" not in received or not ran:
            chunk = theirs.recv(65536)
            if not chunk:
                break
            received += chunk
    theirs.close()
    assert received.startswith(b"HTTP/1.1 101"), received[:200]
    assert len(ran) == 1 and callable(getattr(ran[0], "close", None)), ran


def check_websocket_app_end() -> None:
    """eventlet's websocket app calls ``handler(ws)`` after writing the handshake and lets an
    exception other than OSError out of it with nothing more written; a handler that returns
    is followed by the closing frame and ``wsgi.WSGI_LOCAL.already_handled``."""
    import eventlet.wsgi
    from eventlet.green import socket
    from eventlet.websocket import WebSocketWSGI

    class Marker(Exception):
        pass

    def raising(ws: Any) -> None:
        raise Marker

    for handler in (raising, lambda ws: None):
        ours, theirs = socket.socketpair()
        environ = {"HTTP_CONNECTION": "Upgrade", "HTTP_UPGRADE": "websocket",
                   "HTTP_SEC_WEBSOCKET_VERSION": "13",
                   "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==", "gunicorn.socket": ours,
                   # eventlet.wsgi puts it in every request's environ; eventlet < 0.37's
                   # websocket app calls it without looking first
                   "eventlet.set_idle": lambda: None}
        eventlet.wsgi.WSGI_LOCAL.already_handled = False
        raised = False
        try:
            WebSocketWSGI(handler)(environ, lambda *a: None)
        except Marker:
            raised = True
        ours.close()
        received = b""
        while chunk := theirs.recv(65536):
            received += chunk
        theirs.close()
        head, _, rest = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), received[:200]
        if handler is raising:
            assert raised and rest == b"", (raised, rest)
        else:
            assert rest == b"\x88\x00", rest  # the closing frame
            assert eventlet.wsgi.WSGI_LOCAL.already_handled is True


def check_websocket_deflate_offer() -> None:
    """eventlet's websocket app negotiates permessage-deflate from the environ's
    ``HTTP_SEC_WEBSOCKET_EXTENSIONS`` alone: with the offer, the 101 answers the extension and
    the websocket has it; without the key, neither."""
    from eventlet.green import socket
    from eventlet.websocket import WebSocketWSGI

    for offer in ("permessage-deflate; client_max_window_bits", None):
        ours, theirs = socket.socketpair()
        environ = {"HTTP_CONNECTION": "Upgrade", "HTTP_UPGRADE": "websocket",
                   "HTTP_SEC_WEBSOCKET_VERSION": "13",
                   "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==", "gunicorn.socket": ours,
                   "eventlet.set_idle": lambda: None}
        if offer is not None:
            environ["HTTP_SEC_WEBSOCKET_EXTENSIONS"] = offer
        seen: list[Any] = []
        WebSocketWSGI(seen.append)(environ, lambda *a: None)
        ours.close()
        received = b""
        while chunk := theirs.recv(65536):
            received += chunk
        theirs.close()
        head = received.partition(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"http/1.1 101"), received[:200]
        accepted = b"sec-websocket-extensions: permessage-deflate" in head
        assert accepted == (offer is not None), head
        extensions = seen[0].extensions if seen else None
        assert bool(extensions and "permessage-deflate" in extensions) == (offer is not None), \
            extensions


def check_websocket_socket() -> None:
    """eventlet's ``RFC6455WebSocket`` reads a frame only through ``self.socket.recv(n)``
    (any number of bytes up to n per call) and writes through ``self.socket.sendall``, so a
    stand-in socket that buffers reads (worker/ws_reads.py) can take its place."""
    import websocket
    from eventlet.green import socket
    from eventlet.websocket import RFC6455WebSocket

    used: list[str] = []

    class OneByteAtATime:
        def __init__(self, sock: Any) -> None:
            self._sock = sock

        def recv(self, size: int) -> bytes:
            used.append("recv")
            return self._sock.recv(1)

        def sendall(self, data: bytes) -> None:
            used.append("sendall")
            self._sock.sendall(data)

        def __getattr__(self, name: str) -> Any:
            used.append(name)
            return getattr(self._sock, name)

    ours, theirs = socket.socketpair()
    try:
        ws = RFC6455WebSocket(ours, {}, 13)
        ws.socket = OneByteAtATime(ours)
        theirs.sendall(websocket.ABNF.create_frame("hello", websocket.ABNF.OPCODE_TEXT).format())
        assert ws.wait() == "hello"
        ws.send("back")
        assert set(used) == {"recv", "sendall"}, used
    finally:
        ours.close()
        theirs.close()


def check_websocket_states() -> None:
    """The session's upgrading / upgraded / connected at each ``ws.wait()`` of
    python-engineio's _websocket_handler, for an upgrade and for a websocket-only session."""
    from engineio.socket import Socket

    class WebSocket:
        def __init__(self, session: Any, frames: list[Any]) -> None:
            self.session, self.frames, self.seen = session, frames, []

        def wait(self) -> Any:
            s = self.session
            self.seen.append((s.connected, s.upgrading, s.upgraded))
            return self.frames.pop(0)

        def send(self, data: Any) -> None:
            pass

        def close(self) -> None:
            pass

    upgrade = Socket(eio_server(), "sid")
    upgrade.connected = True  # as _handle_connect leaves a polling session
    ws = WebSocket(upgrade, ["2probe", "5", None])
    upgrade._websocket_handler(ws)
    assert ws.seen == [(True, True, False), (True, True, False), (True, False, True)], ws.seen
    direct = Socket(eio_server(), "sid")
    ws = WebSocket(direct, [None])
    direct._websocket_handler(ws)
    assert ws.seen == [(True, False, True)], ws.seen


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


def check_socket_session() -> None:
    sio = sio_server()
    eio_sid, _ = connected_client(sio)
    sid = sio.manager.sid_from_eio_sid(eio_sid, "/")
    sio.save_session(sid, {"kept": 1})
    assert sio.eio.sockets[eio_sid].session == {"/": {"kept": 1}}


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


def check_async_pubsub_thread() -> None:
    """AsyncPubSubManager.initialize() (synchronous) starts the task that reads _listen() and
    keeps it in ``thread``."""
    import asyncio

    import socketio
    from socketio.async_pubsub_manager import AsyncPubSubManager

    heard: list[Any] = []

    class Capture(AsyncPubSubManager):
        async def _listen(self) -> Any:
            heard.append("listening")
            await asyncio.sleep(3600)
            yield {}

    async def scenario() -> None:
        manager = Capture()
        socketio.AsyncServer(client_manager=manager)
        manager.initialize()
        assert isinstance(manager.thread, asyncio.Task), type(manager.thread)
        await asyncio.sleep(0.05)
        assert heard == ["listening"], heard
        manager.thread.cancel()
        await asyncio.gather(manager.thread, return_exceptions=True)

    asyncio.run(scenario())


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
    if cls is socketio.AsyncServer:
        return socketio.AsyncServer(async_mode="asgi")
    if cls is engineio.AsyncServer:
        return engineio.AsyncServer(async_mode="asgi")
    if cls is socketio.PubSubManager:
        manager = socketio.PubSubManager()
        sio_server(client_manager=manager)
        return manager
    if cls.__name__ == "AsyncPubSubManager":
        manager = cls()
        manager.set_server(socketio.AsyncServer())
        return manager
    if cls is socketio.WSGIApp:
        return socketio.WSGIApp(sio_server())
    if cls is eventlet.wsgi.Server:
        return eventlet.wsgi.Server(_NoListener(), ("", 0), lambda e, s: [])
    if cls is eventlet.wsgi.HttpProtocol:
        return served_connection(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")[0]
    if cls.__name__ == "RFC6455WebSocket":  # eventlet.websocket's, built as its handshake does
        from eventlet.green import socket

        ours, theirs = socket.socketpair()
        theirs.close()
        return cls(ours, {"REMOTE_ADDR": "127.0.0.1"}, 13)
    if cls.__module__ == "eventlet.queue" and cls.__name__ == "LightQueue":
        return cls()  # a session's queue is an eventlet.queue.Queue, a LightQueue
    if cls.__module__ == "eventlet.semaphore" and cls.__name__ == "Semaphore":
        return cls()  # a websocket's send lock, as eventlet's websocket makes it
    if cls is eventlet.hubs.hub.BaseHub:
        from eventlet.hubs import get_hub

        return get_hub()
    if cls.__name__ == "RFC6455WebSocket":
        import eventlet.green.socket

        ours, _theirs = eventlet.green.socket.socketpair()
        return cls(ours, {})
    # The asyncio engine's (worker/aio): built outside any event loop, as the worker does.
    if cls is socketio.AsyncServer:
        return socketio.AsyncServer(async_mode="asgi")
    if cls is socketio.AsyncRedisManager:
        manager = socketio.AsyncRedisManager("redis://127.0.0.1:1")
        manager._redis_connect()  # what its listener does first; connects lazily, so no I/O
        return manager
    from engineio.async_socket import AsyncSocket
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    if cls is ServerState:
        return ServerState()
    if cls is Config:
        config = Config(lambda scope, receive, send: None, log_config=None)
        config.load()
        return config
    if cls is AsyncSocket:
        return AsyncSocket(engineio.AsyncServer(async_mode="asgi"), "sid")
    if cls.__name__ == "ASGIApp" and cls.__module__ == "engineio.async_drivers.asgi":
        return cls(engineio.AsyncServer(async_mode="asgi"))
    if cls.__name__ == "WebSocket" and cls.__module__ == "engineio.async_drivers.asgi":
        ws = cls(None, None)

        async def asgi_send(message: Any) -> None: ...

        ws.asgi_send = asgi_send  # what its __call__ sets from the environ
        return ws
    if cls.__name__ == "WebSocketsSansIOProtocol":
        import asyncio

        config = Config(lambda scope, receive, send: None, log_config=None)
        config.load()
        loop = asyncio.new_event_loop()
        try:
            protocol = cls(config, ServerState(), {}, _loop=loop)
            protocol.connection_made(_FakeTransport())  # sets transport and conn
        finally:
            loop.close()
        return protocol
    raise LookupError(
        f"no instance factory for {class_target} in tests/support/contract_layouts.py"
    )


class _FakeTransport:
    """Just enough of an asyncio transport for uvicorn's HTTP protocol."""

    def __init__(self) -> None:
        self.written = b""
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.9", 1234), "sockname": ("127.0.0.1", 80)}.get(name)

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def check_uvicorn_cycle() -> None:
    """uvicorn's HTTP protocol, as worker/aio/serving.py reads it: in the server state's
    connections once made, ``cycle`` None before a request, ``cycle.response_complete`` once
    answered, ``client`` the peer, ``shutdown()`` closing an idle connection."""
    import asyncio

    import uvicorn
    from uvicorn.server import ServerState

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def run() -> None:
        config = uvicorn.Config(app, http="httptools", lifespan="off", log_config=None,
                                proxy_headers=False, access_log=False)
        config.load()
        state = ServerState()
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=state, app_state={}, _loop=asyncio.get_running_loop())
        transport = _FakeTransport()
        protocol.connection_made(transport)
        assert protocol in state.connections and protocol.transport is transport
        assert protocol.client == ("127.0.0.9", 1234), protocol.client
        assert protocol.cycle is None
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(100):
            if protocol.cycle is not None and protocol.cycle.response_complete:
                break
            await asyncio.sleep(0.01)
        assert protocol.cycle.response_complete, transport.written
        assert transport.written.startswith(b"HTTP/1.1 200"), transport.written
        protocol.shutdown()
        assert transport.closing

    asyncio.run(run())


def check_asgi_translate_request() -> None:
    """Every asgi-mode AsyncServer uses the driver's one table, whose ``translate_request``
    is awaited with (scope, receive, send) and returns the environ, REMOTE_ADDR included."""
    import asyncio

    import engineio
    import engineio.async_drivers.asgi

    table = engineio.async_drivers.asgi._async
    assert engineio.AsyncServer(async_mode="asgi")._async is table

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/socket.io/", "query_string": b"EIO=4",
             "headers": [], "client": ("127.0.0.9", 1234)}
    environ = asyncio.run(table["translate_request"](scope, receive, None))
    assert "REMOTE_ADDR" in environ and environ["asgi.scope"] is scope, environ
    assert asyncio.run(environ["wsgi.input"].read()) == b"", environ


# A websocket upgrade request, and a masked text frame "hi" from a client.
_WS_UPGRADE = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
_WS_MASK = b"\x01\x02\x03\x04"
_WS_HI = b"\x81\x82" + _WS_MASK + bytes(b ^ _WS_MASK[i % 4] for i, b in enumerate(b"hi"))


def check_uvicorn_websocket() -> None:
    """uvicorn's websockets-sansio protocol as worker/aio/ws_protocol.py changes it: its
    ``queue`` and ``writable`` replaced after ``__init__``, ``request``/``response`` dropped
    after the accept, and a handshake and a received message still served."""
    import asyncio

    import uvicorn
    from uvicorn.server import ServerState

    from sioctl.worker.aio.ws_protocol import lean_websocket_protocol

    got: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        got.append(await receive())

    async def until(predicate: Callable[[], Any]) -> None:
        for _ in range(500):
            if predicate():
                return
            await asyncio.sleep(0.01)

    async def run() -> None:
        config = uvicorn.Config(app, ws="websockets-sansio", lifespan="off", log_config=None,
                                ws_ping_interval=None, ws_ping_timeout=None)
        config.load()
        protocol = lean_websocket_protocol(config.ws_protocol_class)(
            config=config, server_state=ServerState(), app_state={})
        transport = _FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(_WS_UPGRADE)
        await until(lambda: transport.written)
        assert transport.written.startswith(b"HTTP/1.1 101"), transport.written
        await until(lambda: "request" not in vars(protocol))
        assert "request" not in vars(protocol) and "response" not in vars(protocol)
        # websockets' handshake parser replaced by its frame parser (ws_protocol.restart_parser)
        from websockets.protocol import Protocol
        assert protocol.conn.parser.gi_code is Protocol.parse.__code__, protocol.conn.parser
        protocol.data_received(_WS_HI)
        await until(lambda: got)
        assert got == [{"type": "websocket.receive", "text": "hi"}], got
        protocol.connection_lost(None)

    asyncio.run(run())


def check_uvicorn_upgrade() -> None:
    """uvicorn's HTTP protocol with worker/aio/ws_protocol.py's LeanUpgradeMixin: a websocket
    upgrade hands the transport to the websocket protocol, and the HTTP protocol object is
    freed with its last reference (its parser no longer holds it), the websocket served."""
    import asyncio
    import gc
    import weakref

    import uvicorn
    from uvicorn.server import ServerState

    from sioctl.worker.aio.ws_protocol import lean_http_protocol, lean_websocket_protocol

    class Transport(_FakeTransport):
        protocol: Any = None

        def set_protocol(self, protocol: Any) -> None:
            self.protocol = protocol

        def get_protocol(self) -> Any:
            return self.protocol

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await receive()

    async def run() -> None:
        config = uvicorn.Config(app, http="httptools", ws="websockets-sansio", lifespan="off",
                                log_config=None, ws_ping_interval=None, ws_ping_timeout=None)
        config.load()
        config.ws_protocol_class = lean_websocket_protocol(config.ws_protocol_class)
        transport = Transport()
        protocol: Any = lean_http_protocol(config.http_protocol_class)(
            config=config, server_state=ServerState(), app_state={},
            _loop=asyncio.get_running_loop())
        transport.protocol = protocol
        protocol.connection_made(transport)
        ref = weakref.ref(protocol)
        gc.disable()
        try:
            protocol.data_received(_WS_UPGRADE)
            del protocol
            assert ref() is None, "the HTTP protocol outlives the upgrade"
        finally:
            gc.enable()
        ws = transport.protocol
        assert type(ws).__name__.startswith("Lean"), ws
        for _ in range(500):
            if transport.written:
                break
            await asyncio.sleep(0.01)
        assert transport.written.startswith(b"HTTP/1.1 101"), transport.written
        ws.connection_lost(None)

    asyncio.run(run())

def _green_pair(tls: bool) -> tuple[Any, Any]:
    """Two connected green sockets (a socketpair), with TLS between them when ``tls`` (a
    self-signed certificate): the writing end and the reading end."""
    from eventlet.green import socket

    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    if not tls:
        return ours, theirs
    import tempfile
    from pathlib import Path

    from tests.support.certificates import green_tls_pair, self_signed

    cert, key = self_signed(Path(tempfile.mkdtemp(prefix="sio")))
    return green_tls_pair(ours, theirs, cert, key)


def check_green_send_timeout(tls: bool) -> None:
    """eventlet's green ``send`` (``GreenSocket``'s; ``GreenSSLSocket``'s under TLS) under a
    timeout, as worker/connection.py's send loop relies on it: it returns the count sent (a
    part once the send buffer is full); a send that finds no room waits at most the timeout,
    then raises ``socket.timeout`` (a TimeoutError) having sent nothing, so the caller's count
    stays right (everything sent is what the peer reads). Under TLS, worker/ws_reads.py's
    ``tls_send`` (the stdlib's ``ssl.SSLSocket.send`` under ``GreenSSLSocket``) does not wait:
    eventlet keeps the socket non-blocking, so a full buffer raises SSLWantWriteError."""
    import ssl

    import eventlet

    from sioctl.worker.ws_reads import tls_send

    ours, theirs = _green_pair(tls)
    try:
        data = b"x" * 65536
        sent = 0
        ours.settimeout(0.05)
        for _ in range(1000):  # bounded: the buffers hold a few hundred KB at most
            try:
                sent += ours.send(data)
            except TimeoutError:
                break
        else:
            raise AssertionError("a send nobody reads did not time out")
        ours.settimeout(None)
        if tls:
            send = tls_send(ours)
            assert send.__func__ is ssl.SSLSocket.send, send
            try:
                sent += send(data)
                raise AssertionError("a full TLS socket took a send")
            except ssl.SSLWantWriteError:
                pass

        def read_all() -> int:
            got = 0
            while got < sent:
                got += len(theirs.recv(65536))
            return got

        reader = eventlet.spawn(read_all)
        with eventlet.Timeout(10):
            assert reader.wait() == sent
    finally:
        ours.close()
        theirs.close()


def check_hub_switch_out() -> None:
    """eventlet's hub, as worker/protocol/green_handlers.py relies on it: a greenlet that
    waits (``hub.switch()``) has its ``switch_out()`` called first, then the hub becomes its
    parent (so its end goes to the hub)."""
    import eventlet
    import greenlet
    from eventlet.hubs import get_hub

    hub = get_hub()
    main = greenlet.getcurrent()
    seen: list[Any] = []

    class Probe(greenlet.greenlet):
        def switch_out(self) -> None:
            seen.append("switch_out")
            hub.schedule_call_global(0, main.switch)  # the caller goes on, as run_now does

    def body() -> None:
        eventlet.sleep(0)
        seen.append(greenlet.getcurrent().parent)

    probe = Probe(body)
    probe.switch()  # back here once the probe has waited (it may have ended by then)
    assert seen[:1] == ["switch_out"], seen
    for _ in range(10):
        if probe.dead:
            break
        eventlet.sleep(0.01)
    assert probe.dead and seen == ["switch_out", hub.greenlet], seen


LAYOUTS: dict[str, Callable[[], None]] = {
    "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol.parser (layout)":
        check_uvicorn_upgrade,
    "engineio:Server.sockets (layout)": check_sockets_layout,
    "engineio:Server.handlers (layout)": check_eio_handlers,
    "engineio:Server._handle_connect (layout)": check_handle_connect,
    "engineio:Server._async (layout)": check_async_websocket,
    "engineio.async_drivers.asgi:_async (layout)": check_asgi_translate_request,
    "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol.cycle (layout)": check_uvicorn_cycle,
    "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol.queue "
    "(layout)": check_uvicorn_websocket,
    "engineio.base_server:default_logger (layout)": check_logger("engineio.server"),
    "engineio.socket:Socket.queue (layout)": check_open_packet_first,
    "engineio.socket:Socket.last_ping (layout)": check_last_ping,
    "engineio.socket:Socket._websocket_handler (layout)": check_websocket_states,
    "eventlet.websocket:RFC6455WebSocket.socket (layout)": check_websocket_socket,
    "eventlet.websocket:WebSocketWSGI.__call__ (layout)": check_websocket_app_end,
    "eventlet.websocket:WebSocketWSGI._handle_hybi_request (layout)":
        check_websocket_deflate_offer,
    "socketio:Server._binary_packet (layout)": check_binary_packet,
    "socketio:Server.environ (layout)": check_sio_environ,
    "engineio.socket:Socket.session (layout)": check_socket_session,
    "socketio.base_server:default_logger (layout)": check_logger("socketio.server"),
    "socketio:PubSubManager.rooms (layout)": check_rooms,
    "socketio:PubSubManager._publish (layout)": check_pubsub_messages,
    "socketio.async_pubsub_manager:AsyncPubSubManager.thread (layout)":
        check_async_pubsub_thread,
    "eventlet.wsgi:Server.process_request (layout)": check_process_request,
    "eventlet.hubs.hub:BaseHub.switch (layout)": check_hub_switch_out,
    "eventlet.greenio.base:GreenSocket.send (layout)": lambda: check_green_send_timeout(False),
    "eventlet.green.ssl:GreenSSLSocket.send (layout)": lambda: check_green_send_timeout(True),
}
