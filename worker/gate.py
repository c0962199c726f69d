"""The drain's gate: while draining, new engine.io sessions are refused with 503."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from sioctl.worker.calls import direct_call


def opens_session(query_string: str) -> bool:
    """Whether a request with this query string would open a new engine.io session (it names
    no ``sid``); engine-free, shared with the asyncio engine's gate."""
    return not parse_qs(query_string).get("sid")


class DrainGate:
    """WSGI middleware: while draining, a request without a ``sid`` gets 503.

    Requests of existing engine.io sessions carry ``sid`` in the query string and keep working
    until their session is closed.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = direct_call(app)  # no C-level call per layer (worker/calls.py)
        self.draining = False

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.draining and opens_session(environ.get("QUERY_STRING", "")):
            body = b"server is shutting down\n"
            # No Connection header here: the drain turns keep-alive off, so eventlet.wsgi
            # already answers "Connection: close" and ends the connection.
            start_response(
                "503 Service Unavailable",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return self.app(environ, start_response)
