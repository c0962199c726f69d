"""The async shells of the protocol rules (worker/protocol/async_engineio.py,
async_socketio.py) on python-socketio's real AsyncServer, driven in process through its ASGI
app (ASGI messages passed by hand: no socket, no server process). The asyncio engine that
serves them end to end is issue 15; these check that the shells carry out the core's
decisions on python-engineio's and python-socketio's coroutines."""

from __future__ import annotations

import asyncio
import contextvars
import json
from typing import Any

import pytest
import socketio

from sioctl.worker import protocol
from sioctl.worker.protocol.async_engineio import AsyncConformantSocket
from tests.support.asgi_client import PING_INTERVAL, Client, make_app, run, v3_packets


def test_install_picks_the_async_shells_by_class() -> None:
    sio, _ = make_app()
    assert isinstance(sio, protocol.ASYNC_SERVER_MIXINS[0])
    assert isinstance(sio.eio, protocol.ASYNC_ENGINE_MIXINS[0])
    assert not isinstance(sio.eio, protocol.ENGINE_MIXINS[1])  # no sync shell on asyncio
    before = type(sio.eio)
    protocol.install(sio, connect_timeout=3)  # again: only the settings change
    assert type(sio.eio) is before and sio._sioctl_state.connect_timeout == 3
    sync = socketio.Server(async_mode="threading")
    protocol.install(sync)
    assert isinstance(sync.eio, protocol.ENGINE_MIXINS[0])


def test_handshake_advertises_the_exact_ping_interval_and_pings_from_a_loop_timer() -> None:
    async def scenario() -> None:
        sio, app = make_app()
        client = Client(app)
        handshake = await client.open()
        assert handshake["pingInterval"] == round(PING_INTERVAL * 1000)
        session = sio.eio.sockets[client.sid]
        assert isinstance(session, AsyncConformantSocket)
        assert session.rules.ping_due is not None and session._ping_handle is not None
        assert await client.get() == (200, b"2")  # the ping, from the timer
        assert session.rules.ping_due is None
        await session.close(wait=False, abort=True)
        assert session._ping_handle is None

    run(scenario())


@pytest.mark.parametrize("method, query, problem", [
    ("PUT", "EIO=4&transport=polling", b"Unsupported method PUT"),
    ("GET", "EIO=4", b"Missing transport"),
    ("POST", "EIO=4&transport=polling", b"Missing sid"),
])
def test_request_level_400s(method: str, query: str, problem: bytes) -> None:
    async def scenario() -> None:
        _, app = make_app()
        status, body = await Client(app).request(method, query)
        assert (status, body) == (400, b'"' + problem + b'"')

    run(scenario())


def test_post_is_answered_ok_and_socketio_rules_apply() -> None:
    async def scenario() -> None:
        _, app = make_app()
        client = Client(app)
        await client.open()
        assert await client.post(b"40/nowhere,") == (200, b"ok")
        status, body = await client.get()
        assert body.startswith(b'44/nowhere,') and json.loads(body[11:]) == {
            "message": "Invalid namespace"}
        assert await client.post(b"40") == (200, b"ok")
        status, body = await client.get()
        assert body.startswith(b"40{")
        assert await client.post(b'420["echo",1]') == (200, b"ok")
        assert await client.get() == (200, b"430[1]")

    run(scenario())


def test_first_packet_must_be_a_connect() -> None:
    async def scenario() -> None:
        sio, app = make_app()
        client = Client(app)
        await client.open()
        assert await client.post(b'42["echo",1]') == (200, b"ok")
        assert sio.eio.sockets.get(client.sid) is None or sio.eio.sockets[client.sid].closed

    run(scenario())


def test_invalid_and_oversized_posts_close_the_session() -> None:
    async def scenario() -> None:
        sio, app = make_app(max_http_buffer_size=100)
        client = Client(app)
        await client.open()
        status, _ = await client.post(b"2")  # a PING: server to client only
        assert status == 400
        assert (await client.get())[0] == 400
        await client.open()
        status, _ = await client.post(b"4" + b"x" * 200)
        assert status == 413
        assert (await client.get())[0] == 400

    run(scenario())


def test_a_second_concurrent_get_closes_the_session() -> None:
    async def scenario() -> None:
        sio, app = make_app()
        client = Client(app)
        await client.open()
        await client.get()  # the first ping
        session = sio.eio.sockets[client.sid]
        first = asyncio.ensure_future(client.get())
        while not session.rules.get_active:  # bounded by run()'s timeout
            await asyncio.sleep(0)
        assert (await client.get())[0] == 400
        assert session.closed
        await first

    run(scenario())


def test_connect_timeout_closes_a_silent_session() -> None:
    async def scenario() -> None:
        sio, app = make_app(connect_timeout=0.2, ping_interval=25)
        client = Client(app)
        await client.open()
        # The sweep closes the session: the waiting poll gets its CLOSE packet.
        assert await client.get() == (200, b"1")
        assert sio._sioctl_state.awaiting == {}

    run(scenario())


class WebSocket:
    """A websocket to ``app`` for the session ``sid``, as ASGI messages: frames go in with
    ``push``, what the server sends comes out of ``sent``."""

    def __init__(self, app: Any, sid: str) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})
        scope = {"type": "websocket", "path": "/socket.io/",
                 "query_string": f"EIO=4&transport=websocket&sid={sid}".encode(),
                 "headers": [(b"connection", b"Upgrade"), (b"upgrade", b"websocket")]}
        self.task = asyncio.ensure_future(app(scope, self.incoming.get, self.sent.put))

    def push(self, text: str) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": text})

    async def next(self) -> dict[str, Any]:
        """The next message the server sent (bounded by run()'s timeout)."""
        return await self.sent.get()

    async def closed(self) -> bool:
        """Whether the server closes the websocket, having sent no more than a noop and a
        CLOSE packet first. Waits on the messages, never on the server's own task: python-
        engineio's read loop swallows a cancellation, which would hide a hang."""
        for _ in range(3):
            message = await self.next()
            if message["type"] == "websocket.close":
                return True
            assert message["type"] == "websocket.accept" or message.get("text") in ("6", "1")
        return False

    async def frame(self) -> str:
        while True:
            message = await self.next()
            if message["type"] == "websocket.send":
                return str(message["text"])
            assert message["type"] == "websocket.accept", message


def test_upgrade_then_polls_are_refused_and_a_second_websocket_is_closed() -> None:
    async def scenario() -> None:
        sio, app = make_app(ping_interval=25, ping_timeout=20)
        client = Client(app)
        await client.open()
        session = sio.eio.sockets[client.sid]
        ws = WebSocket(app, client.sid)
        ws.push("2probe")
        assert await ws.frame() == "3probe"
        assert session.upgrading and session.rules.upgrade_pending
        assert await client.get() == (200, b"6")  # python-engineio's noop ends the poll
        ws.push("5")
        while session.rules.upgrade_pending:  # settles at the next read of the websocket
            await asyncio.sleep(0)
        assert session.upgraded
        assert (await client.get())[0] == 400
        second = WebSocket(app, client.sid)
        assert [(await second.next())["type"] for _ in range(2)] == [
            "websocket.accept", "websocket.close"]
        await second.task
        assert not session.closed  # the session goes on over its first websocket
        assert await ws.frame() == "6"  # python-engineio's answer to the UPGRADE packet
        ws.push("40")
        assert (await ws.frame()).startswith("40{")
        ws.push("0")  # OPEN: a client may not send it (python-engineio would ignore it)
        assert await ws.closed()
        await ws.task
        assert session.closed

    run(scenario())


def test_a_bad_probe_closes_only_the_probe_websocket() -> None:
    async def scenario() -> None:
        sio, app = make_app(ping_interval=25, ping_timeout=20)
        client = Client(app)
        await client.open()
        session = sio.eio.sockets[client.sid]
        ws = WebSocket(app, client.sid)
        ws.push("x")  # python-engineio's decoder raises out of its handler for this one
        assert await ws.closed()
        await ws.task
        assert not session.upgrading and not session.upgraded and not session.closed
        assert not session.rules.upgrade_pending
        assert await client.post(b"40") == (200, b"ok")  # polling goes on
        assert (await client.get())[1].startswith(b"40{")

    run(scenario())


def test_eio3_handshakes_are_refused_unless_allowed() -> None:
    async def scenario() -> None:
        _, app = make_app()
        status, body = await Client(app).request("GET", "EIO=3&transport=polling")
        assert status == 400 and b"--allow-eio3" in body

    run(scenario())


def test_eio3_session_on_asyncio() -> None:
    async def scenario() -> None:
        sio, app = make_app(ping_interval=25)
        protocol.install(sio, allow_eio3=True)
        client = Client(app)
        status, body = await client.request("GET", "EIO=3&transport=polling")
        assert status == 200
        packets = v3_packets(body)
        handshake = json.loads(packets[0][1:])
        assert packets[0][0] == "0" and "maxPayload" not in handshake
        assert handshake["pingInterval"] == 25000
        query = f"EIO=3&transport=polling&sid={handshake['sid']}"
        session = sio.eio.sockets[handshake["sid"]]
        assert type(session).__name__ == "AsyncEio3Session"
        assert session.rules.ping_due is None  # v3: the client pings
        # v4 > Connection to the default namespace: connected without a CONNECT.
        while "40" not in packets:  # bounded by run()'s timeout
            packets = v3_packets((await client.request("GET", query))[1])
        assert await client.request("POST", query, b"6:2probe") == (200, b"ok")
        assert v3_packets((await client.request("GET", query))[1]) == ["3probe"]
        assert await client.request("POST", query, b'13:421["echo",7]') == (200, b"ok")
        assert v3_packets((await client.request("GET", query))[1]) == ["431[7]"]
        # A namespace nobody serves: v4's ERROR with the bare message.
        assert await client.request("POST", query, b"16:40/chat?token=1,") == (200, b"ok")
        assert v3_packets((await client.request("GET", query))[1]) == [
            '44/chat,"Invalid namespace"']

    run(scenario())


def test_each_event_handler_runs_in_a_task_and_context_of_its_own() -> None:
    """python-socketio's ``async_handlers`` semantics on the asyncio shells (what a faster
    handler start must keep): each handler runs in a task of its own with its own copy of the
    context, and a handler that waits holds up none of the client's other events or acks."""
    where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="none")

    async def scenario() -> None:
        sio, app = make_app()
        release = asyncio.Event()
        tasks: dict[str, Any] = {}

        @sio.on("hold")
        async def hold(sid: str, data: Any) -> Any:
            where.set("hold")
            tasks["hold"] = asyncio.current_task()
            await release.wait()
            return where.get()

        @sio.on("peek")
        async def peek(sid: str, data: Any) -> Any:
            tasks["peek"] = asyncio.current_task()
            return where.get()

        client = Client(app)
        await client.open()
        assert await client.post(b"40") == (200, b"ok")
        assert (await client.get())[1].startswith(b"40{")
        assert await client.post(b'421["hold",1]') == (200, b"ok")
        assert await client.post(b'422["peek",1]') == (200, b"ok")
        assert await client.get() == (200, b'432["none"]')  # hold still waits
        assert tasks["hold"] is not tasks["peek"] and not tasks["hold"].done()
        release.set()
        assert await client.get() == (200, b'431["hold"]')

    run(scenario())
