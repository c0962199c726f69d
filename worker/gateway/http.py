"""``POST /api/transportMessage``: a web page or a backend pushes a message to a client.

The body ``{"timestamp", "app", "target", "userId", "sign", "message"}`` (JSON, or the same
fields as a form: :mod:`.form`) is checked like a
``requestMessage`` (the signature over app, key and timestamp, the time window, the app), then
``message`` reaches ``target`` (a client id or a userId) as an ``exchange`` on
``responseMessage``, on whichever worker or node holds it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sioctl.worker.flow import Flow, run

from . import form, rules, wire
from .config import GatewayConfig
from .gateway import Gateway
from .plugin import Denied, GatewayCore

log = logging.getLogger("sioctl.gateway")

StartResponse = Callable[..., Any]


def http_message(
    gateway: GatewayCore, raw: bytes | None, content_type: str | None = None
) -> Flow[tuple[int, dict[str, Any]]]:
    """The status and JSON body that answer a ``POST`` of ``raw`` (None: over the size limit)
    sent as ``content_type`` (the header, None when absent), on either engine: 415 for a
    content type other than JSON or a form (:func:`.form.body_kind`), the checks of
    :func:`.rules.check_http_message`, the replay check and the delivery."""
    config = gateway.config
    kind = form.body_kind(content_type)
    if kind is None:
        return 415, _body(415, "send application/json or application/x-www-form-urlencoded")
    if raw is None:
        return 413, _body(413, f"the body is over {config.http_max_body} bytes")
    try:
        body = rules.check_http_message(config, raw, wire.now_ms(), kind)
        yield from _replay_check(gateway, body)
    except rules.Refused as refused:
        if refused.logged:
            log.info("gateway: refused an HTTP message: %s", refused.message)
        return refused.status, _body(refused.status, refused.message, fields=refused.fields)
    try:
        delivered_to = yield from gateway.delivery(body["target"], rules.http_exchange(body))
    except Denied as denied:
        return 503, _body(503, denied.reason)
    if delivered_to is None:
        return 404, _body(404, f"target {body['target']!r} is not online")
    return 200, _body(200, "delivered", success=True)


def _replay_check(gateway: GatewayCore, body: dict[str, Any]) -> Flow[None]:
    """Raise Refused when the signed body is a replay (401), or the registry that would
    tell is away (503: not the caller's fault)."""
    try:
        yield from gateway.replay_check(body["app"], body.get("nonce"), body["sign"], None)
    except Denied as denied:
        if not denied.disconnect:
            raise rules.Refused(503, denied.reason, logged=False) from None
        raise rules.Refused(401, denied.reason) from None


def method_answer(method: str) -> tuple[int, dict[str, Any] | None, list[tuple[str, str]]] | None:
    """The answer to a request on the gateway's path that is not a ``POST`` (status, body,
    extra headers), or None for a ``POST``."""
    if method == "OPTIONS":
        return 204, None, []
    if method != "POST":
        return 405, _body(405, "use POST"), [("Allow", "POST, OPTIONS")]
    return None


def response(
    config: GatewayConfig, status: int, body: dict[str, Any] | None, origin: str | None,
    extra: list[tuple[str, str]] | None = None,
) -> tuple[str, list[tuple[str, str]], bytes]:
    """The status line, headers and bytes of an answer (CORS headers for ``origin``)."""
    data = b"" if body is None else json.dumps(body).encode()
    headers = [("Content-Length", str(len(data)))] + list(extra or [])
    if body is not None:
        headers.append(("Content-Type", "application/json"))
    headers += _cors_headers(config, origin)
    return f"{status} {_REASONS[status]}", headers, data


class TransportMessageApp:
    """WSGI middleware answering the gateway's HTTP path and passing everything else on
    (eventlet; ``asgi.TransportMessageASGI`` is the asyncio one)."""

    def __init__(self, gateway: Gateway, app: Callable[..., Any]) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.config.http_path:
            return self.app(environ, start_response)
        early = method_answer(environ.get("REQUEST_METHOD", "GET"))
        if early is not None:
            status, body, extra = early
        else:
            raw = _read_body(environ, self.config.http_max_body)
            (status, body), extra = run(http_message(self.gateway, raw,
                                                     environ.get("CONTENT_TYPE"))), []
        status_line, headers, data = response(self.config, status, body,
                                              environ.get("HTTP_ORIGIN"), extra)
        start_response(status_line, headers)
        return [data]


def _cors_headers(config: GatewayConfig, origin: str | None) -> list[tuple[str, str]]:
    allowed = config.cors
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
    405: "Method Not Allowed", 413: "Payload Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Entity",
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
