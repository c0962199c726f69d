"""gunicorn's request limits on the asyncio engine: ``limit_request_line`` (414),
``limit_request_fields`` and ``limit_request_field_size`` (431), 0 meaning no limit.

uvicorn's parsers bound none of them (docs/design.md §2b: a 10 000-byte request line and 150
headers reach the app), so this ASGI middleware refuses such a request before the app sees it,
with the status gunicorn (and the eventlet worker, for the line and the count) answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sioctl.cluster.settings import Settings

AsgiApp = Callable[..., Any]


class RequestLimits:
    """ASGI middleware: 414 / 431 for requests past the settings' limits."""

    def __init__(self, app: AsgiApp, settings: Settings) -> None:
        self.app = app
        self.line = settings.limit_request_line
        self.fields = settings.limit_request_fields
        self.field_size = settings.limit_request_field_size

    def problem(self, scope: dict[str, Any]) -> tuple[int, bytes] | None:
        """(status, body) when the request is past a limit, else None."""
        if self.line > 0:
            target = len(scope.get("raw_path") or scope["path"].encode())
            query = scope.get("query_string", b"")
            # METHOD SP target SP HTTP/x.y, as gunicorn counts it.
            length = len(scope.get("method", "GET")) + target + (len(query) + 1 if query else 0)
            if length + 10 > self.line:
                return 414, b"Request-URI Too Long\n"
        headers = scope["headers"]
        if self.fields > 0 and len(headers) > self.fields:
            return 431, b"Too many request header fields\n"
        if self.field_size > 0 and any(len(k) + len(v) + 2 > self.field_size for k, v in headers):
            return 431, b"Request header field too large\n"
        return None

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        # The app's own awaitable, not a coroutine of ours awaiting it: one frame less on
        # every idle websocket's chain (serving.DrainGate.__call__).
        if scope["type"] in ("http", "websocket"):
            problem = self.problem(scope)
            if problem is not None:
                return self._refuse(scope, send, problem)
        return self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: dict[str, Any], send: Any, problem: tuple[int, bytes]) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1009})
            return
        status, body = problem
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"text/plain"), (b"connection", b"close"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
