"""``POST /api/transportMessage`` on the asyncio engine: ASGI middleware in front of the
worker's ASGI app. What the request means and what it is answered is :mod:`.http`'s (the same
checks, statuses, bodies and CORS headers as the WSGI endpoint); this module reads the body
and sends the answer the ASGI way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sioctl.worker.flow import arun

from .http import http_message, method_answer, response

if TYPE_CHECKING:
    from .plugin import GatewayCore

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class TransportMessageASGI:
    """ASGI middleware answering the gateway's HTTP path and passing everything else on."""

    def __init__(self, gateway: GatewayCore, app: Callable[..., Any]) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != self.config.http_path:
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", ())}
        early = method_answer(scope.get("method", "GET"))
        if early is not None:
            status, body, extra = early
        else:
            raw = await _read_body(receive, headers.get(b"content-length"),
                                   self.config.http_max_body)
            content_type = headers.get(b"content-type")
            (status, body), extra = await arun(http_message(
                self.gateway, raw,
                None if content_type is None else content_type.decode("latin-1"))), []
        origin = headers.get(b"origin")
        _, header_list, data = response(self.config, status, body,
                                        None if origin is None else origin.decode("latin-1"),
                                        extra)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(name.lower().encode("latin-1"), value.encode("latin-1"))
                                for name, value in header_list]})
        await send({"type": "http.response.body", "body": data})


async def _read_body(receive: Receive, length: bytes | None, limit: int) -> bytes | None:
    """The request body, or None when it is over ``limit`` bytes (read no further than that)."""
    try:
        declared = int(length or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    data = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        data += message.get("body", b"")
        if len(data) > limit:
            return None
        if not message.get("more_body", False):
            break
    return data
