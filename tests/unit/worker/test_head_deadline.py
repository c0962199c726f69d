"""worker/aio/head_deadline.py in process: uvicorn's HTTP protocol with HeadDeadlineMixin
serving a small ASGI app on a real listening socket of the test's event loop, and raw clients.

The cluster-level case (a trickled later head cut on both engines) is
tests/e2e/test_hardening_conns.py; here, what the mixin must leave alone: a websocket opened
as the second request of a kept-alive connection, and a header timeout of 0.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from sioctl.worker.aio.head_deadline import HeadDeadlineMixin, with_head_deadline

# Short, so the tests do not wait long; the keep-alive timeout is longer than the header
# timeout, so that only the mixin can cut a trickled head within it.
HEADER_TIMEOUT = 0.3
KEEPALIVE = 5
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
# How long a test waits for what must happen within HEADER_TIMEOUT.
PATIENCE = 5.0


async def app(scope: dict[str, Any], receive: Callable[..., Any],
              send: Callable[..., Any]) -> None:
    """200 "ok" to HTTP requests; a websocket echo."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text")})


async def serve(header_timeout: float) -> tuple[asyncio.Server, int]:
    """A server of ``app`` on 127.0.0.1 whose HTTP protocol has the mixin; (server, port)."""
    config = uvicorn.Config(app, http="httptools", ws="websockets-sansio", lifespan="off",
                            log_config=None, access_log=False, timeout_keep_alive=KEEPALIVE)
    config.load()
    protocol_class = with_head_deadline(config.http_protocol_class, header_timeout)
    assert issubclass(protocol_class, HeadDeadlineMixin)
    factory = functools.partial(protocol_class, config=config, server_state=ServerState(),
                                app_state={})
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def response_head(reader: asyncio.StreamReader) -> bytes:
    """The next response's head."""
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PATIENCE)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True when the server closes the connection within ``seconds`` (what it sends is
    dropped)."""

    async def drain() -> None:
        while await reader.read(65536):
            pass

    try:
        await asyncio.wait_for(drain(), seconds)
        return True
    except asyncio.TimeoutError:
        return False
    except ConnectionError:
        return True


def test_a_trickled_later_head_is_cut() -> None:
    """The mixin's own case, in process: after one response, a head trickled a line every
    0.1 s (never idle for the keep-alive timeout) is closed."""

    async def main() -> bool:
        server, port = await serve(HEADER_TIMEOUT)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(REQUEST)
            assert (await response_head(reader)).startswith(b"HTTP/1.1 200")
            await reader.readexactly(2)
            writer.write(b"GET / HTTP/1.1\r\n")
            for _ in range(int(PATIENCE / 0.1)):
                if reader.at_eof():
                    return True
                try:
                    writer.write(b"X-A: 1\r\n")
                    await writer.drain()
                except ConnectionError:
                    return True
                if await closed_within(reader, 0.1):
                    return True
            return False
        finally:
            writer.close()
            server.close()

    assert asyncio.run(main()), f"the trickled head was not cut within {PATIENCE} s"


def test_a_websocket_opened_on_a_kept_alive_connection_is_not_cut() -> None:
    """A websocket upgrade as the second request lifts the deadline: the websocket still
    echoes well past the header timeout."""

    async def main() -> None:
        server, port = await serve(HEADER_TIMEOUT)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(REQUEST)
            assert (await response_head(reader)).startswith(b"HTTP/1.1 200")
            await reader.readexactly(2)
            key = base64.b64encode(os.urandom(16))
            writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
            assert (await response_head(reader)).startswith(b"HTTP/1.1 101")
            # Three times the header timeout, with the connection silent.
            assert not await closed_within(reader, 3 * HEADER_TIMEOUT)
            # A masked text frame "hi"; the echo comes back unmasked.
            mask = os.urandom(4)
            writer.write(bytes([0x81, 0x80 | 2]) + mask
                         + bytes(b ^ mask[i % 4] for i, b in enumerate(b"hi")))
            frame = await asyncio.wait_for(reader.readexactly(4), PATIENCE)
            assert frame == b"\x81\x02hi"
        finally:
            writer.close()
            server.close()

    asyncio.run(main())


def test_a_header_timeout_of_0_sets_no_deadline() -> None:
    """With 0 (no limit), a later head trickled past what would have been the deadline is
    still served once its blank line arrives."""

    async def main() -> None:
        server, port = await serve(0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(REQUEST)
            assert (await response_head(reader)).startswith(b"HTTP/1.1 200")
            await reader.readexactly(2)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            for _ in range(int(3 * HEADER_TIMEOUT / 0.1)):
                writer.write(b"X-A: 1\r\n")
                await writer.drain()
                await asyncio.sleep(0.1)
            writer.write(b"\r\n")
            assert (await response_head(reader)).startswith(b"HTTP/1.1 200")
        finally:
            writer.close()
            server.close()

    asyncio.run(main())
