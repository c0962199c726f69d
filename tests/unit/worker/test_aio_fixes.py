"""worker/aio/fixes.py: what the wrapped ASGI driver's translate_request gives, in process
(the wrapper is built with ``wrap``, the driver's table is left alone)."""

from __future__ import annotations

import asyncio
from typing import Any

import engineio.async_drivers.asgi

from sioctl.worker.aio import fixes


def translated(kind: str) -> dict[str, Any]:
    first: dict[str, Any] = (
        {"type": "websocket.connect"} if kind == "websocket"
        else {"type": "http.request", "body": b"", "more_body": False})

    async def receive() -> dict[str, Any]:
        return first

    scope = {"type": kind, "method": "GET", "path": "/socket.io/",
             "query_string": b"EIO=4&transport=websocket", "headers": [],
             "client": ("127.0.0.9", 1234)}
    translate = fixes.wrap(engineio.async_drivers.asgi._async["translate_request"])
    result: dict[str, Any] = asyncio.run(translate(scope, receive, None))
    return result


def test_the_client_address_is_the_scope_s_and_a_websocket_has_no_body_to_keep() -> None:
    websocket, http = translated("websocket"), translated("http")
    for environ in (websocket, http):
        assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("127.0.0.9", "1234")
    # The driver's own wsgi.input (a class defined per call) is not kept by a websocket's
    # environ, which lives as long as its session.
    assert websocket["wsgi.input"] is fixes.NO_BODY
    assert asyncio.run(websocket["wsgi.input"].read()) == b""
    assert http["wsgi.input"] is not fixes.NO_BODY
