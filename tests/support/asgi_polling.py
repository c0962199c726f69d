"""A Socket.IO v5 client over Engine.IO v4 long-polling that calls an ASGI app directly (real
ASGI calls under the test's event loop, no network), and the app directories the in-process
tests write. Used by the in-process tests of the asyncio side of the framework and the gateway;
nothing in it is specific to one app.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any


def write_app(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


class PollingClient:
    """A Socket.IO v5 client over Engine.IO v4 long-polling, calling the ASGI app directly."""

    def __init__(self, asgi_app: Any, query: str = "",
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        self.app = asgi_app
        self.query = query
        self.headers = list(headers)
        self.eio_sid = ""
        self.packets: list[str] = []

    async def _request(self, method: str, body: str = "") -> str:
        query = "EIO=4&transport=polling" + (f"&sid={self.eio_sid}" if self.eio_sid else "")
        query += f"&{self.query}" if self.query else ""
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": "/socket.io/",
                 "raw_path": b"/socket.io/", "query_string": query.encode(), "root_path": "",
                 "headers": [(b"host", b"127.0.0.1"),
                             (b"content-length", str(len(body.encode())).encode()),
                             *self.headers],
                 "client": ("127.0.0.1", 40000),
                 "server": ("127.0.0.1", 80)}
        received = False
        response: dict[str, Any] = {"body": b""}

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": body.encode(), "more_body": False}
            await asyncio.Event().wait()  # this client never hangs up mid-request
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
            else:
                response["body"] += message.get("body", b"")

        await asyncio.wait_for(self.app(scope, receive, send), 10)
        assert response["status"] == 200, response
        return response["body"].decode()

    async def open(self, auth: dict[str, Any]) -> None:
        handshake = await self._request("GET")
        assert handshake.startswith("0")
        self.eio_sid = json.loads(handshake[1:])["sid"]
        await self.send("0" + json.dumps(auth))

    async def send(self, socketio_packet: str) -> None:
        # python-engineio answers "OK", sioctl's protocol rules "ok" (as the JS server does).
        assert (await self._request("POST", "4" + socketio_packet)).lower() == "ok"

    async def until(self, wanted: str) -> list[str]:
        """Poll until a packet starting with ``wanted`` arrives; returns what came up to it."""
        for _ in range(20):
            for index, packet in enumerate(self.packets):
                if packet.startswith(wanted):
                    seen, self.packets = self.packets[: index + 1], self.packets[index + 1:]
                    return seen
            body = await self._request("GET")
            frames = body.split("\x1e")
            self.packets += [p[1:] for p in frames if p.startswith("4")]
            if "2" in frames:  # the server's ping: answered, or it closes the session
                assert (await self._request("POST", "3")).lower() == "ok"
        raise AssertionError(f"no {wanted!r} packet; got {self.packets}")


async def settled(app: Any, line: str) -> None:
    """Let the loop run until ``line`` is in the trace (tasks the server started)."""
    for _ in range(1000):
        if line in app.trace:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{line!r} not in the trace: {app.trace}")




HttpAnswer = tuple[int, dict[bytes, bytes], bytes]


async def http_call(app: Any, method: str, path: str, body: bytes = b"",
                    headers: tuple[tuple[bytes, bytes], ...] = ()) -> HttpAnswer:
    """One HTTP request to the ASGI ``app``: (status, headers with lowercase names, body)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode()),
                         *headers],
             "client": ("127.0.0.1", 40001), "server": ("127.0.0.1", 80)}
    sent = False
    response: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
            response["headers"] = {k.lower(): v for k, v in message.get("headers", [])}
        else:
            response["body"] += message.get("body", b"")

    await asyncio.wait_for(app(scope, receive, send), 10)
    return response["status"], response["headers"], response["body"]


def join_redis(app: Any, url: str, channel: str) -> Any:
    """Give the app's AsyncServer python-socketio's Redis manager on ``channel``, with the
    ``when_redis_back`` list sioctl's asyncio manager keeps, as the asyncio worker installs
    its manager after the app loads; returns the manager. python-socketio's manager knows no
    Redis Cluster: on a ``redis+cluster://`` URL it is sioctl's (which keeps that list too)."""
    import socketio

    from sioctl.cluster.redis_urls import is_cluster

    if is_cluster(url):
        from sioctl.worker.messaging.async_manager import AsyncSioctlRedisManager

        sioctl_manager = AsyncSioctlRedisManager(url, channel=channel)
        app.sio.manager = sioctl_manager
        sioctl_manager.set_server(app.sio)
        app.sio.manager_initialized = False
        return sioctl_manager

    class Manager(socketio.AsyncRedisManager):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.when_redis_back: list[Any] = []

    manager = Manager(url, channel=channel)
    app.sio.manager = manager
    manager.set_server(app.sio)
    app.sio.manager_initialized = False
    return manager
