"""The gateway's wire format and signatures, in plain stdlib Python (its configuration:
``config.py``).

Server and Python clients share this module; it imports neither eventlet, socketio nor redis.

Wire format (kept exactly as existing Node/JS clients speak it): the client emits the event
``requestMessage`` with an envelope, the server answers on ``responseMessage``::

    {"meta": {"timestamp": <ms since epoch>, "app": "...", "sign": "...",
              "client": "<sender client id>", "userId": "...", "target": "..."},
     "data": {"action": "...", "payload": <any JSON>}}

Signatures
----------
``md5`` (the default, what existing clients send): ``md5(app + key + str(timestamp))`` as
lowercase hex, the timestamp being the integer milliseconds the client put in ``meta``.

``hmac-sha256`` (opt-in per app, ``scheme: "hmac-sha256"``): hex HMAC-SHA256 keyed with the
app's key over ``"\\n".join([app, str(timestamp), nonce, canonical_json(payload)])``, where the
nonce travels in ``meta.nonce`` and canonical JSON is ``json.dumps(payload, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)``.

Why HMAC is stronger: the md5 signature covers only the app name and the timestamp, not the
payload, the action or the target. Anyone who sees one envelope (a proxy log, a shared network,
the browser's devtools) can reuse its ``timestamp``/``sign`` pair to send any payload to any
client for as long as the window lasts (±300 s by default). ``md5(secret + data)`` is also open
to length extension, and md5 itself is broken for collisions. HMAC-SHA256 binds the signature
to the exact payload and to a single-use nonce; the server remembers nonces for the window
(in Redis), so a captured envelope can neither be altered nor replayed.

An md5 app may refuse replays too (``md5_replay``: ``same_socket`` or ``refuse``, see
:class:`AppSpec`): a captured signature then cannot be used from another connection or over
HTTP, though it still signs any payload for the socket that used it first. Neither scheme
protects against someone holding a client: the key signs in the client, so whoever has the
client's code has the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # config.py imports this module
    from .config import GatewayConfig

REQUEST_MESSAGE = "requestMessage"
RESPONSE_MESSAGE = "responseMessage"

SAVE_ID = "saveId"
REQUEST_ID = "requestId"
SEND_TO_OTHERS = "sendToOthers"
RE_CONNECT_AND_UPDATES = "reconnectAndUpdates"
RE_CONNECT_UPDATED = "reconnectUpdated"
DENY = "deny"
EXCHANGE = "exchange"
BROADCAST = "broadcast"
CONNECT = "connect"
DISCONNECT = "disconnect"

ACTIONS = frozenset(
    {
        SAVE_ID,
        REQUEST_ID,
        SEND_TO_OTHERS,
        RE_CONNECT_AND_UPDATES,
        RE_CONNECT_UPDATED,
        DENY,
        EXCHANGE,
        BROADCAST,
        CONNECT,
        DISCONNECT,
    }
)

MD5 = "md5"
HMAC_SHA256 = "hmac-sha256"
SCHEMES = (MD5, HMAC_SHA256)
# Hex digest lengths; a sign of any other length is refused before comparing.
_SIGN_LENGTH = {MD5: 32, HMAC_SHA256: 64}
# Nonces become Redis keys: keep them short.
MAX_NONCE_LENGTH = 128

# md5_replay: what the md5 scheme does with a signature it has already accepted.
REPLAY_ALLOW = "allow"
REPLAY_SAME_SOCKET = "same_socket"
REPLAY_REFUSE = "refuse"
MD5_REPLAY_MODES = (REPLAY_ALLOW, REPLAY_SAME_SOCKET, REPLAY_REFUSE)



# ---------------------------------------------------------------- messages


def now_ms() -> int:
    """Milliseconds since the epoch, as JavaScript's ``Date.now()``."""
    return time.time_ns() // 1_000_000


class _Empty:
    """The payload left out: ``{}``, as the seed's JS helpers default it (``payload = {}``);
    an explicit None stays None, as JS keeps an explicit ``null``."""

    def __repr__(self) -> str:
        return "{}"


EMPTY: Any = _Empty()


def parse_msg(
    action: str, payload: Any = EMPTY, metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``{"meta": {"timestamp": now, **metadata}, "data": {"action": action, "payload": payload}}``.

    A ``timestamp`` in ``metadata`` replaces the current time (as the JS spread does). The
    payload left out is a new ``{}`` (the seed's default).
    """
    return {
        "meta": {"timestamp": now_ms(), **(metadata or {})},
        "data": {"action": action, "payload": {} if payload is EMPTY else payload},
    }


def parse_broadcast_msg(
    payload: Any = EMPTY, metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A ``broadcast`` message (see :func:`parse_msg`)."""
    return parse_msg(BROADCAST, payload, metadata)


def parse_deny_msg(
    payload: Any = EMPTY, metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A ``deny`` message (see :func:`parse_msg`); the payload usually carries the reason."""
    return parse_msg(DENY, payload, metadata)


def parse_exchange_msg(
    payload: Any = EMPTY, metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An ``exchange`` message (see :func:`parse_msg`): what a target receives."""
    return parse_msg(EXCHANGE, payload, metadata)


# ---------------------------------------------------------------- signatures


def sign(app: str, key: str, timestamp: int) -> str:
    """The md5 scheme's signature: lowercase hex ``md5(app + key + str(timestamp))``."""
    return hashlib.md5((app + key + str(timestamp)).encode("utf-8")).hexdigest()


# verify() takes a parameter named ``sign``, which hides the function there.
_sign_md5 = sign


def canonical_json(payload: Any) -> str:
    """The payload as the HMAC scheme signs it: sorted keys, no spaces, non-ASCII kept.

    Raises TypeError/ValueError/RecursionError for values JSON cannot represent.
    """
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sign_hmac(app: str, key: str, timestamp: int, nonce: str, payload: Any) -> str:
    """The hmac-sha256 scheme's signature: hex HMAC-SHA256(key, app \\n timestamp \\n nonce \\n
    canonical_json(payload)).

    Raises TypeError/ValueError for a payload that is not JSON (or not UTF-8 encodable).
    """
    message = "\n".join([app, str(timestamp), nonce, canonical_json(payload)])
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def signed_request(
    action: str,
    app: str,
    key: str,
    payload: Any = None,
    target: str | None = None,
    client: str | None = None,
    user_id: str | None = None,
    scheme: str = MD5,
) -> dict[str, Any]:
    """A complete signed ``requestMessage`` envelope, for clients.

    Meta holds timestamp, app, sign, then client/userId/target when given; the hmac-sha256
    scheme adds a fresh random ``nonce``. Raises ValueError for an unknown scheme.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected one of {', '.join(SCHEMES)}, got {scheme!r}")
    timestamp = now_ms()
    meta: dict[str, Any] = {"timestamp": timestamp, "app": app}
    if scheme == HMAC_SHA256:
        nonce = secrets.token_hex(16)
        meta["sign"] = sign_hmac(app, key, timestamp, nonce, payload)
    else:
        meta["sign"] = sign(app, key, timestamp)
    for name, value in (("client", client), ("userId", user_id), ("target", target)):
        if value is not None:
            meta[name] = value
    if scheme == HMAC_SHA256:
        meta["nonce"] = nonce
    return {"meta": meta, "data": {"action": action, "payload": payload}}


# ---------------------------------------------------------------- validation


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _is_timestamp(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_envelope(obj: Any) -> list[str]:
    """The paths of the fields that make ``obj`` a malformed ``requestMessage`` envelope.

    Empty when well-formed. ``["envelope"]`` when ``obj`` is not a dict; ``["meta"]`` /
    ``["data"]`` when those are not dicts. Checks: meta.timestamp int ms (not bool), meta.app
    non-empty string, meta.sign string, meta.client / meta.userId string or absent (null counts
    as absent), meta.nonce non-empty string of at most 128 characters or absent, data.action
    string, meta.target non-empty string when the action is sendToOthers. Other keys are
    ignored. Never raises.
    """
    if not isinstance(obj, dict):
        return ["envelope"]
    failed: list[str] = []
    meta = obj.get("meta")
    data = obj.get("data")
    action = data.get("action") if isinstance(data, dict) else None
    if not isinstance(meta, dict):
        failed.append("meta")
    else:
        if not _is_timestamp(meta.get("timestamp")):
            failed.append("meta.timestamp")
        if not _is_text(meta.get("app")):
            failed.append("meta.app")
        if not isinstance(meta.get("sign"), str):
            failed.append("meta.sign")
        for name in ("client", "userId"):
            if meta.get(name) is not None and not isinstance(meta[name], str):
                failed.append(f"meta.{name}")
        target = meta.get("target")
        if action == SEND_TO_OTHERS:
            if not _is_text(target):
                failed.append("meta.target")
        elif target is not None and not isinstance(target, str):
            failed.append("meta.target")
        if meta.get("nonce") is not None and not _is_nonce(meta["nonce"]):
            failed.append("meta.nonce")
    if not isinstance(data, dict):
        failed.append("data")
    elif not isinstance(action, str):
        failed.append("data.action")
    return failed


def _is_nonce(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NONCE_LENGTH


def check_http_body(obj: Any) -> list[str]:
    """The fields that make ``obj`` a malformed ``POST /api/transportMessage`` body.

    Expects ``{"timestamp": int ms, "app": str, "target": str, "userId": str (optional),
    "sign": str, "message": any JSON (required, may be null)}`` plus ``nonce`` (optional
    string) for hmac-sha256 apps, where ``message`` is the signed payload. ``["body"]`` when
    ``obj`` is not a dict. Empty when well-formed. Never raises.
    """
    if not isinstance(obj, dict):
        return ["body"]
    failed: list[str] = []
    if not _is_timestamp(obj.get("timestamp")):
        failed.append("timestamp")
    for name in ("app", "target"):
        if not _is_text(obj.get(name)):
            failed.append(name)
    if obj.get("userId") is not None and not isinstance(obj["userId"], str):
        failed.append("userId")
    if not isinstance(obj.get("sign"), str):
        failed.append("sign")
    if "message" not in obj:
        failed.append("message")
    if obj.get("nonce") is not None and not _is_nonce(obj["nonce"]):
        failed.append("nonce")
    return failed


def verify(
    config: GatewayConfig,
    app: Any,
    timestamp_ms: Any,
    sign: Any,
    now_ms: int,
    nonce: Any = None,
    payload: Any = None,
) -> str | None:
    """None when the signature is valid for ``app`` at ``now_ms``, else the reason.

    Reasons: ``unknown app 'x'``, ``timestamp outside the allowed window (±300 s)`` (expired
    or in the future; exactly ±window is accepted), ``bad timestamp``, ``missing nonce``
    (hmac-sha256 apps), ``bad signature`` (also for a sign of the wrong type or length).
    The comparison takes constant time. Whether a nonce was seen before is the caller's check
    (it needs shared storage). Never raises.
    """
    spec = config.apps.get(app) if isinstance(app, str) else None
    if spec is None:
        return f"unknown app {_short_repr(app)}"
    if not _is_timestamp(timestamp_ms):
        return "bad timestamp"
    # Checked before signing: it also keeps absurd integers away from str().
    if abs(timestamp_ms - now_ms) > config.window_seconds * 1000:
        return f"timestamp outside the allowed window (±{config.window_seconds:g} s)"
    if (
        not isinstance(sign, str)
        or len(sign) != _SIGN_LENGTH[spec.scheme]
        or not sign.isascii()
    ):
        return "bad signature"
    if spec.scheme == HMAC_SHA256:
        if not _is_nonce(nonce):
            return "missing nonce"
        try:
            expected = sign_hmac(app, spec.key, timestamp_ms, nonce, payload)
        except (TypeError, ValueError, RecursionError):
            return "bad signature"
    else:
        expected = _sign_md5(app, spec.key, timestamp_ms)
    if not hmac.compare_digest(expected.encode("ascii"), sign.encode("ascii")):
        return "bad signature"
    return None


def _short_repr(value: Any, limit: int = 64) -> str:
    # Reasons go back to the client and into the log: never echo a huge or odd value whole.
    if not isinstance(value, str):
        return f"(a {type(value).__name__}, not a name)"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
