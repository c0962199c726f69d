"""The access log on the asyncio engine: gunicorn's Logger (the same ``access_log_format`` and
``--access-logfile`` as the eventlet worker, worker/access_log.py), fed by an ASGI middleware.

One line per HTTP request once its response is done, and one per websocket once it ends (101
when it was accepted, 403 when the app refused it), as the eventlet worker logs them.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

from gunicorn.glogging import Logger

from sioctl.worker.aio.ws_protocol import handed_over_reader

AsgiApp = Callable[..., Any]


class _Response:
    """What gunicorn's Logger.atoms() reads from a response: status, sent, headers."""

    def __init__(self) -> None:
        self.status = "-"
        self.headers: list[tuple[str, str]] = []
        self.sent = 0


class _Request:
    """What Logger.atoms() reads from a request: its headers."""

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.headers = headers


class AsgiAccessLog:
    """ASGI middleware writing one access line per request through gunicorn's ``logger``."""

    def __init__(self, app: AsgiApp, logger: Logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        response = _Response()

        async def recording_send(message: dict[str, Any]) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                response.status = str(message["status"])
                response.headers = [(k.decode("latin-1"), v.decode("latin-1"))
                                    for k, v in message.get("headers", [])]
            elif kind == "http.response.body":
                response.sent += len(message.get("body", b""))
            elif kind == "websocket.accept":
                response.status = "101"
            elif kind == "websocket.close" and response.status == "-":
                response.status = "403"
            await send(message)

        def log() -> None:
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
            elapsed = datetime.timedelta(seconds=time.monotonic() - started)
            self.logger.access(response, _Request(headers), environ_of(scope, headers), elapsed)

        try:
            await self.app(scope, receive, recording_send)
        except Exception:
            if response.status == "-":
                response.status = "500"  # what uvicorn answers for the app
            raise
        finally:
            # A websocket whose reads were handed to its protocol's callbacks outlives the
            # app's call (worker/protocol/async_ws_reader.py): its line, with its duration,
            # is written when it ends, as eventlet's posthooks do.
            reader = handed_over_reader(receive) if scope["type"] == "websocket" else None
            if reader is not None:
                reader.at_end(log)
            else:
                log()


def environ_of(scope: dict[str, Any], headers: list[tuple[str, str]]) -> dict[str, Any]:
    """The WSGI-style names gunicorn's atoms read, from an ASGI scope."""
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    client = scope.get("client")
    environ: dict[str, Any] = {
        "REMOTE_ADDR": client[0] if client else "-",
        "REQUEST_METHOD": scope.get("method", "GET"),
        "RAW_URI": f"{path}?{query}" if query else path,
        "PATH_INFO": scope["path"],
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
    }
    for name, value in headers:
        key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ
