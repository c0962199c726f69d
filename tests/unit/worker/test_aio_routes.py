"""worker/aio/routes.py: python-engineio's ASGI routing as a plain call (no coroutine of
``ASGIApp.__call__`` left suspended under an idle websocket), put in front only of an
engine.io/socket.io ASGI app as it comes whose server has sioctl's async shell."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import engineio
import socketio

from sioctl.worker import protocol
from sioctl.worker.aio.routes import EngineIoRoutes, engineio_routes


def _installed_app(**kwargs: Any) -> socketio.ASGIApp:
    sio = socketio.AsyncServer(async_mode="asgi")
    protocol.install(sio)
    return socketio.ASGIApp(sio, **kwargs)


def test_only_a_plain_asgi_app_of_an_installed_server_is_routed() -> None:
    app = _installed_app()
    assert isinstance(engineio_routes(app), EngineIoRoutes)

    bare = socketio.ASGIApp(socketio.AsyncServer(async_mode="asgi"))  # no sioctl shell
    assert engineio_routes(bare) is bare

    class OwnCall(socketio.ASGIApp):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await super().__call__(scope, receive, send)

    own = OwnCall(app.engineio_server)
    assert engineio_routes(own) is own

    def plain(scope: Any, receive: Any, send: Any) -> None: ...

    assert engineio_routes(plain) is plain


def test_engineio_requests_get_the_servers_awaitable_and_the_rest_go_to_the_app() -> None:
    sent: list[dict[str, Any]] = []
    other_calls: list[str] = []

    async def other(scope: dict[str, Any], receive: Any, send: Any) -> None:
        other_calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})

    app = _installed_app(other_asgi_app=other)
    routes = engineio_routes(app)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    def scope(path: str, query: bytes) -> dict[str, Any]:
        return {"type": "http", "method": "GET", "path": path, "query_string": query,
                "headers": [], "scheme": "http"}

    async def run() -> Any:
        # Without the trailing slash too, as python-engineio's test takes it.
        call = routes(scope("/socket.io", b"EIO=4&transport=polling"), receive, send)
        assert inspect.iscoroutine(call)
        assert call.cr_code is not engineio.ASGIApp.__call__.__code__
        result = await call
        await routes(scope("/elsewhere", b""), receive, send)
        return result

    result = asyncio.run(run())
    assert result is None  # what uvicorn wants an ASGI app to return
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert sent[1]["body"].startswith(b"0{")  # the OPEN packet of a new session
    assert other_calls == ["/elsewhere"]
    assert sent[-1]["status"] == 204
