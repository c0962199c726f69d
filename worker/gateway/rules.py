"""The gateway's decisions, with no socket, registry or clock of their own: what to deny, which
userId claim to try, what a replay check must claim.

The worker's :class:`~sioctl.worker.gateway.gateway.Gateway` calls these and does the I/O (the
registry in Redis, emits, disconnects) around them; an engine on asyncio would await its own
registry between the same calls.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from ..protocol.core.nesting import MAX_DEPTH, deeper_than
from . import form, wire
from .config import GatewayConfig

CLIENT_ACTIONS = {wire.REQUEST_ID, wire.SEND_TO_OTHERS, wire.RE_CONNECT_AND_UPDATES, wire.BROADCAST}


class Denied(Exception):
    """A request refused; ``reason`` goes back to the client, ``fields`` names bad fields."""

    def __init__(self, reason: str, fields: list[str] | None = None, disconnect: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.fields = fields or []
        self.disconnect = disconnect


def handshake_refusal(config: GatewayConfig, auth: Any, now_ms: int) -> str | None:
    """Why a handshake's ``auth`` must be refused before any replay check, or None. Apps with
    ``handshake_sign`` demand a signed ``auth`` ({app, timestamp, sign}); a handshake naming an
    app must sign for it."""
    auth = auth if isinstance(auth, dict) else {}
    app = auth.get("app")
    required = [name for name, spec in config.apps.items() if spec.handshake_sign]
    if app is None:
        if required and len(required) == len(config.apps):
            return "the handshake must carry a signed auth {app, timestamp, sign}"
        return None
    if not isinstance(app, str):
        return "auth.app must be a string"
    timestamp = auth.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        return "auth.timestamp must be an integer (ms since the epoch)"
    return wire.verify(config, app, timestamp, auth.get("sign"), now_ms,
                       nonce=auth.get("nonce"), payload=None)


def check_request(config: GatewayConfig, args: list[Any], now_ms: int) -> dict[str, Any]:
    """The envelope of a ``requestMessage`` whose form and signature are right; raises Denied.
    (Its replay check and :func:`check_rights` come next.)"""
    if len(args) != 1:
        raise Denied(f"requestMessage takes one envelope, got {len(args)} arguments")
    envelope = args[0]
    fields = wire.check_envelope(envelope)
    if fields:
        raise Denied("malformed envelope", fields)
    meta, data = envelope["meta"], envelope["data"]
    if deeper_than(data.get("payload"), MAX_DEPTH):
        # python-socketio would recurse over it when sending it on (RecursionError).
        raise Denied(f"payload nested deeper than {MAX_DEPTH} levels", ["data.payload"])
    reason = wire.verify(config, meta["app"], meta["timestamp"], meta["sign"], now_ms,
                         nonce=meta.get("nonce"), payload=data.get("payload"))
    if reason is not None:
        raise Denied(reason)
    return envelope


class Refused(Exception):
    """An HTTP message refused: ``status`` and ``message`` go back to the caller, ``fields``
    names bad fields; ``logged`` is False where the refusal is not worth a log line."""

    def __init__(self, status: int, message: str, fields: list[str] | None = None,
                 logged: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or []
        self.logged = logged


def check_http_message(
    config: GatewayConfig, raw: bytes, now_ms: int, kind: str = form.JSON
) -> dict[str, Any]:
    """The body of a ``POST /api/transportMessage`` whose form and signature are right; raises
    Refused (422: not JSON or not a form a body comes from, malformed, nested too deeply;
    401: the signature). ``kind`` is what :func:`.form.body_kind` made of the Content-Type.
    Its replay check comes next."""
    try:
        body = form.parse_form(raw) if kind == form.FORM else json.loads(raw)
    except form.FormError as exc:
        raise Refused(422, str(exc), [exc.field]) from None
    except (ValueError, RecursionError):
        raise Refused(422, "the body is not JSON", ["body"]) from None
    fields = wire.check_http_body(body)
    if fields:
        raise Refused(422, "malformed body", fields, logged=False)
    if deeper_than(body["message"], MAX_DEPTH):
        # Sent on, python-socketio would recurse over it (RecursionError, a 500).
        raise Refused(422, f"message nested deeper than {MAX_DEPTH} levels", ["message"])
    reason = wire.verify(config, body["app"], body["timestamp"], body["sign"], now_ms,
                         nonce=body.get("nonce"), payload=body.get("message"))
    if reason is not None:
        raise Refused(401, reason)
    return body


def http_exchange(body: dict[str, Any]) -> dict[str, Any]:
    """The ``exchange`` a checked HTTP message sends to its target."""
    return wire.parse_exchange_msg(body["message"], {
        "app": body["app"], "client": "http", "userId": body.get("userId"),
        "target": body["target"],
    })


def check_rights(
    config: GatewayConfig, app: str, action: Any, signed_app: str | None
) -> None:
    """Raise Denied unless a socket whose handshake was signed for ``signed_app`` may ask for
    ``action`` in ``app``."""
    if config.apps[app].handshake_sign and signed_app != app:
        raise Denied(f"app {app!r} requires a handshake signed for it")
    if action not in CLIENT_ACTIONS:
        raise Denied(f"unknown action {action!r}" if action not in wire.ACTIONS
                     else f"action {action!r} is not accepted from clients")


@dataclass(frozen=True)
class ReplayClaim:
    """What a replay check must claim in the shared registry: a ``nonce`` (hmac-sha256) or a
    ``signature`` on behalf of ``owner`` (md5), for ``ttl`` seconds."""

    what: str
    value: str
    owner: str
    ttl: float


def replay_claim(
    config: GatewayConfig, app: str, nonce: Any, sign: Any, sid: str | None
) -> ReplayClaim | None:
    """The claim that proves a validly signed request of ``app`` is no replay, or None (md5
    with ``md5_replay: allow``).

    hmac-sha256: its ``nonce`` must be new within the window. md5 with ``md5_replay``: ``sign``
    may be reused by the socket ``sid`` that used it first (same_socket) or never (refuse);
    ``sid`` None (an HTTP call) has no connection to reuse it on, so any earlier use makes it a
    replay. A signature stays valid for up to twice the window (a timestamp may be
    ``window_seconds`` ahead or behind), so it is remembered that long."""
    spec = config.apps[app]
    ttl = 2 * config.window_seconds
    if spec.scheme == wire.HMAC_SHA256:
        return ReplayClaim("nonce", str(nonce), "", ttl)
    if spec.md5_replay == wire.REPLAY_ALLOW:
        return None
    if spec.md5_replay == wire.REPLAY_REFUSE or sid is None:
        owner = "once:" + uuid.uuid4().hex  # nobody else has it
    else:
        owner = "socket:" + sid
    return ReplayClaim("signature", str(sign), owner, ttl)


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def connect_claim(auth: Any, app: str | None, vouched_user_id: Any) -> tuple[str, bool] | None:
    """The userId a new socket claims, and whether the claim takes it over from a live socket:
    the app's ``vouched_user_id`` (takes over), else a uuid in ``auth.userId`` of a handshake
    signed for ``app`` (never takes over), else None (a fresh uuid4)."""
    if vouched_user_id is not None:
        return vouched_user_id, True
    claimed = auth.get("userId") if isinstance(auth, dict) else None
    if app is not None and isinstance(claimed, str) and is_uuid(claimed):
        return claimed, False
    return None
