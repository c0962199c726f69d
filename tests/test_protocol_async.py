"""The async shells of the protocol rules (worker/protocol/async_engineio.py,
async_socketio.py) on python-socketio's real AsyncServer, driven in process through its ASGI
app (ASGI messages passed by hand: no socket, no server process). The asyncio engine that
serves them end to end is issue 15; these check that the shells carry out the core's
decisions on python-engineio's and python-socketio's coroutines."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import socketio

from sioctl.worker import protocol
from sioctl.worker.protocol.async_engineio import AsyncConformantSocket

PING_INTERVAL = 0.3  # python-engineio would advertise 0 ms


class Client:
    """One Engine.IO session's polling requests, as ASGI calls on ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sid = ""

    async def request(self, method: str, query: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        events = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return events.pop(0) if events else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        all_headers = {"content-type": "text/plain;charset=UTF-8",
                       "content-length": str(len(body)), **(headers or {})}
        scope = {"type": "http", "method": method, "path": "/socket.io/",
                 "query_string": query.encode(), "headers": [
                     (k.encode(), v.encode()) for k, v in all_headers.items()]}
        await self.app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    async def open(self) -> dict[str, Any]:
        status, body = await self.request("GET", "EIO=4&transport=polling")
        assert status == 200, body
        assert body[:1] == b"0", body
        handshake: dict[str, Any] = json.loads(body[1:])
        self.sid = handshake["sid"]
        return handshake

    async def get(self) -> tuple[int, bytes]:
        return await self.request("GET", f"EIO=4&transport=polling&sid={self.sid}")

    async def post(self, body: bytes, **headers: str) -> tuple[int, bytes]:
        return await self.request("POST", f"EIO=4&transport=polling&sid={self.sid}", body,
                                  headers)


def make_app(connect_timeout: float = 45, ping_interval: float = PING_INTERVAL,
             **kwargs: Any) -> tuple[Any, Any]:
    sio = socketio.AsyncServer(async_mode="asgi", ping_interval=ping_interval, ping_timeout=5,
                               **kwargs)

    @sio.on("echo")
    async def echo(sid: str, data: Any) -> Any:
        return data

    protocol.install(sio, connect_timeout=connect_timeout)
    return sio, socketio.ASGIApp(sio, socketio_path="socket.io")


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_install_picks_the_async_shells_by_class() -> None:
    sio, _ = make_app()
    assert isinstance(sio, protocol.ASYNC_SERVER_MIXINS[0])
    assert isinstance(sio.eio, protocol.ASYNC_ENGINE_MIXINS[0])
    assert not isinstance(sio.eio, protocol.ENGINE_MIXINS[1])  # no sync shell on asyncio
    before = type(sio.eio)
    protocol.install(sio, connect_timeout=3)  # again: only the settings change
    assert type(sio.eio) is before and sio._sioctl_state.connect_timeout == 3
    with pytest.raises(ValueError, match="allow_eio3"):
        protocol.install_engine(sio.eio, allow_eio3=True)
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
