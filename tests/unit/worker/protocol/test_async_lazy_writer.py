"""The asyncio websocket's writer runs only while something is queued
(worker/protocol/async_websocket.py, issue 19): no task waits on an idle session's queue; a
packet is written straight to the transport when it can take it, else a task writes the queue
in order and ends; a put from a loop callback (as the ping timer's) goes out too; once the
reader ends, what was queued before goes out, then the close frame, and nothing after it.

Real parts: the worker's uvicorn websocket protocol class (``lean_websocket_protocol``) on one
end of a socketpair, served to a small ASGI app that hands over its ``send``; python-engineio's
ASGI websocket wrapper and the worker's guarded websocket around it; a real SessionQueue. The
test reads the other end of the socketpair as the client does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import types
from typing import Any

import uvicorn
from engineio import packet
from engineio.async_drivers.asgi import WebSocket as AsgiWebSocket
from uvicorn.server import ServerState

from sioctl.worker.aio.ws_protocol import lean_websocket_protocol
from sioctl.worker.protocol.async_engineio import _AsyncGuardedWebSocket
from sioctl.worker.protocol.async_websocket import AsyncLazyWriter
from sioctl.worker.protocol.session_queue import SessionQueue
from sioctl.worker.protocol.shared_writes import sansio_protocol

UPGRADE = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
TIMEOUT = 10.0


class Client:
    """The client's end of the socketpair: reads the server's (unmasked) frames."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.buffer = b""

    async def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = await asyncio.wait_for(self.loop.sock_recv(self.sock, 4096), TIMEOUT)
            assert chunk, "the server closed the connection"
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    async def handshake(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await asyncio.wait_for(self.loop.sock_recv(self.sock, 4096), TIMEOUT)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        return head

    async def frames(self, count: int) -> list[str]:
        """The text (or 'CLOSE') of the next ``count`` frames (short ones)."""
        seen = []
        for _ in range(count):
            first, second = await self.read_exact(2)
            payload = await self.read_exact(second & 0x7F)
            seen.append("CLOSE" if first & 0x0F == 8 else payload.decode())
        return seen


async def serve() -> tuple[Client, Any, Any, AsyncLazyWriter, Any]:
    """A websocket served by the worker's protocol class; returns the client, the session,
    the protocol, the writer (attached to the session's queue) and the app's end event."""
    loop = asyncio.get_running_loop()
    handed: asyncio.Future[Any] = loop.create_future()
    end = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        handed.set_result(send)
        await end.wait()

    config = uvicorn.Config(app, ws="websockets-sansio", lifespan="off", log_config=None,
                            ws_ping_interval=None, ws_ping_timeout=None)
    config.load()
    protocol_class = lean_websocket_protocol(config.ws_protocol_class)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    _transport, protocol = await loop.connect_accepted_socket(
        lambda: protocol_class(config=config, server_state=ServerState(), app_state={}), ours)
    client = Client(theirs)
    await loop.sock_sendall(theirs, UPGRADE)
    assert (await client.handshake()).startswith(b"HTTP/1.1 101")
    ws = AsgiWebSocket(None, None)
    ws.asgi_send = await asyncio.wait_for(handed, TIMEOUT)
    # server: what the writer reads when the transport takes no write (its time limit).
    server = types.SimpleNamespace(ping_interval=25, ping_timeout=20,
                                   logger=logging.getLogger("test"))
    session = types.SimpleNamespace(queue=SessionQueue(None), upgraded=True, upgrading=False,
                                    _sioctl_writing=False, _sioctl_direct=None, server=server)
    guarded = _AsyncGuardedWebSocket(ws, session)  # type: ignore[arg-type]
    session._sioctl_direct = guarded
    writer = AsyncLazyWriter(session, guarded)
    session.queue.writer = writer
    return client, session, protocol, writer, end


def message(text: str) -> packet.Packet:
    return packet.Packet(packet.MESSAGE, text)


def test_the_worker_protocol_takes_direct_writes() -> None:
    """The fan-out's and the writer's direct writes find uvicorn's protocol under the worker's
    own subclass of it."""

    async def run() -> None:
        client, session, protocol, _writer, end = await serve()
        assert sansio_protocol(session._sioctl_direct._ws) is protocol
        end.set()
        await asyncio.sleep(0.05)  # the app returns
        client.sock.close()

    asyncio.run(run())


def test_the_writer_runs_only_while_something_is_queued() -> None:
    async def run() -> None:
        client, session, protocol, writer, end = await serve()
        queue = session.queue
        tasks_before = len(asyncio.all_tasks())
        for n in range(5):
            queue.put_nowait(message(f"m{n}"))
        # Written straight to the transport: no task, nothing left queued.
        assert writer._task is None and queue.qsize() == 0
        assert len(asyncio.all_tasks()) == tasks_before
        assert await client.frames(5) == [f"4m{n}" for n in range(5)]

        # Over the transport's high-water mark: a task writes, in order, what comes after.
        protocol.writable.clear()
        queue.put_nowait(message("m5"))
        assert writer._task is not None
        queue.put_nowait(message("m6"))
        await asyncio.sleep(0.05)
        assert queue.qsize() == 1  # the task waits to write m5; m6 waits behind it
        protocol.writable.set()
        queue.put_nowait(message("m7"))  # the task runs: queued behind m6, not written first
        assert await client.frames(3) == ["4m5", "4m6", "4m7"]
        for _ in range(100):
            if writer._task is None:
                break
            await asyncio.sleep(0.01)
        assert writer._task is None  # idle again: the task has ended

        # From a loop callback, as the ping timer puts its PING.
        asyncio.get_running_loop().call_soon(queue.put_nowait, packet.Packet(packet.PING))
        assert await client.frames(1) == ["2"]

        # The reader ends: what is queued goes out, then the close frame, then nothing.
        protocol.writable.clear()
        queue.put_nowait(message("last"))
        protocol.writable.set()
        await writer.finish()
        queue.put_nowait(message("after"))
        assert await client.frames(2) == ["4last", "CLOSE"]
        await asyncio.sleep(0.1)
        assert client.buffer == b""
        try:
            extra = client.sock.recv(100)
        except BlockingIOError:
            extra = b""
        assert extra == b"", extra
        end.set()
        await asyncio.sleep(0.05)  # the app returns
        client.sock.close()

    asyncio.run(run())
