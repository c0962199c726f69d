"""The chat app handed to sioctl in wrapped forms.

``app`` is a socketio.WSGIApp; ``application`` is a plain WSGI callable (a middleware that answers
``/health`` itself) wrapping that WSGIApp, the way a user puts Socket.IO behind other WSGI code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import socketio

from tests.apps.chat import sio

app = socketio.WSGIApp(sio)


class HealthMiddleware:
    """Answers GET /health; passes everything else to the wrapped WSGI app (``.app``)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/health":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        return self.app(environ, start_response)


application = HealthMiddleware(app)
