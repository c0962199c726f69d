"""``POST /api/transportMessage``: a web page or a backend pushes a message to a client.

The body ``{"timestamp", "app", "target", "userId", "sign", "message"}`` is checked like a
``requestMessage`` (the signature over app, key and timestamp, the time window, the app), then
``message`` reaches ``target`` (a client id or a userId) as an ``exchange`` on
``responseMessage``, on whichever worker or node holds it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from . import rules, wire
from .plugin import Denied, Gateway

log = logging.getLogger("sioctl.gateway")

StartResponse = Callable[..., Any]


class TransportMessageApp:
    """WSGI middleware answering the gateway's HTTP path and passing everything else on."""

    def __init__(self, gateway: Gateway, app: Callable[..., Any]) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.config.http_path:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "OPTIONS":
            return self._reply(environ, start_response, 204, None)
        if method != "POST":
            return self._reply(environ, start_response, 405,
                               _body(405, "use POST"), [("Allow", "POST, OPTIONS")])
        status, body = self._handle(environ)
        return self._reply(environ, start_response, status, body)

    def _handle(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raw = _read_body(environ, self.config.http_max_body)
        if raw is None:
            return 413, _body(413, f"the body is over {self.config.http_max_body} bytes")
        try:
            body = rules.check_http_message(self.config, raw, wire.now_ms())
            self._check_replay(body)
        except rules.Refused as refused:
            if refused.logged:
                log.info("gateway: refused an HTTP message: %s", refused.message)
            return refused.status, _body(refused.status, refused.message, fields=refused.fields)
        try:
            delivered_to = self.gateway.deliver(body["target"], rules.http_exchange(body))
        except Denied as denied:
            return 503, _body(503, denied.reason)
        if delivered_to is None:
            return 404, _body(404, f"target {body['target']!r} is not online")
        return 200, _body(200, "delivered", success=True)

    def _check_replay(self, body: dict[str, Any]) -> None:
        """Raise Refused when the signed body is a replay (401), or the registry that would
        tell is away (503: not the caller's fault)."""
        try:
            self.gateway.check_replay(body["app"], body.get("nonce"), body["sign"], None)
        except Denied as denied:
            if not denied.disconnect:
                raise rules.Refused(503, denied.reason, logged=False) from None
            raise rules.Refused(401, denied.reason) from None

    def _reply(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        status: int,
        body: dict[str, Any] | None,
        extra: list[tuple[str, str]] | None = None,
    ) -> list[bytes]:
        data = b"" if body is None else json.dumps(body).encode()
        headers = [("Content-Length", str(len(data)))] + list(extra or [])
        if body is not None:
            headers.append(("Content-Type", "application/json"))
        headers += self._cors_headers(environ.get("HTTP_ORIGIN"))
        start_response(f"{status} {_REASONS[status]}", headers)
        return [data]

    def _cors_headers(self, origin: str | None) -> list[tuple[str, str]]:
        allowed = self.config.cors
        if not allowed or origin is None:
            return []
        if allowed == "*":
            value = "*"
        elif origin in (allowed if isinstance(allowed, list) else [allowed]):
            value = origin
        else:
            return []
        return [
            ("Access-Control-Allow-Origin", value),
            ("Access-Control-Allow-Methods", "POST, OPTIONS"),
            ("Access-Control-Allow-Headers", "Content-Type"),
            ("Vary", "Origin"),
        ]


_REASONS = {
    200: "OK", 204: "No Content", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 413: "Payload Too Large", 422: "Unprocessable Entity",
    503: "Service Unavailable",
}


def _body(status: int, message: str, success: bool = False,
          fields: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "success": success, "message": message}
    if fields:
        body["fields"] = fields
    return body


def _read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """The request body, or None when it is over ``limit`` bytes (read no further than that)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return None
    stream = environ["wsgi.input"]
    data = stream.read(length) if length else stream.read(limit + 1)
    return None if len(data) > limit else data
