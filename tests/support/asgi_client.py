"""An in-process Engine.IO polling client for python-socketio's AsyncServer with sioctl's async
protocol shells installed (worker/protocol/async_engineio.py, async_socketio.py): requests
passed by hand as ASGI messages (no socket, no server process), the app they go to, a bounded
runner for the scenarios, and a v3 payload splitter."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import socketio

from sioctl.worker import protocol

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
             ping_timeout: float = 5, **kwargs: Any) -> tuple[Any, Any]:
    sio = socketio.AsyncServer(async_mode="asgi", ping_interval=ping_interval,
                               ping_timeout=ping_timeout, **kwargs)

    @sio.on("echo")
    async def echo(sid: str, data: Any) -> Any:
        return data

    protocol.install(sio, connect_timeout=connect_timeout)
    return sio, socketio.ASGIApp(sio, socketio_path="socket.io")


def run(coroutine: Any) -> Any:
    """Run a scenario, bounded: a hang is a failure, well before python-engineio's own
    timeouts (ping_interval + ping_timeout) would end it some other way."""
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def v3_packets(body: bytes) -> list[str]:
    """The packets of a v3 text payload (``<length>:<packet>``...; ASCII bodies here)."""
    text, packets = body.decode(), []
    while text:
        length, _, rest = text.partition(":")
        packets.append(rest[:int(length)])
        text = rest[int(length):]
    return packets
