"""Sessions read from the socket.io handshake cookie: signed cookies, optionally backed by Redis.

Cookie value format: ``base64url(JSON payload) + "." + base64url(HMAC-SHA256(key, payload))``,
both without padding. The payload is ``{"d": <session data>, "iat": <unix time issued>}``. The
HMAC covers the first segment exactly as it travels, signed with the first of the configured
``keys``; any listed key is accepted when reading, so keys can be rotated by putting the new one
first and keeping the old one second until old cookies have expired.

With ``session.store = "redis"`` the cookie carries only a signed random session id
(``{"sid": id}``) and the data lives in Redis as JSON under ``session_redis_prefix + id``,
expiring together with the cookie when ``session.max_age`` is set.

A socket.io connection cannot set cookies, so sessions are *created* by an HTTP view (a login
page) with :func:`session_cookie_header` or :func:`new_redis_session_cookie`; the socket side
reads them with :class:`SessionLoader` and, for the Redis store only, writes changes back with
:meth:`Session.save`.

This module imports neither eventlet nor socketio: the CLI and plain HTTP apps use it too.
Neither keys, cookie values nor session ids are ever logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import time
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    from sioctl.worker.framework.config import AppConfig

# Browsers drop cookies whose name=value exceeds 4096 bytes; refusing to write (and read) longer
# values makes an oversized session a clear error instead of a silently missing cookie.
MAX_COOKIE_BYTES = 4096
DEFAULT_COOKIE_NAME = "SIOCTL_SESS"
# A cookie value this module writes: two base64url segments joined by a dot.
_VALUE_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# RFC 6265 cookie-name (an RFC 2616 token).
_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")


class SessionError(RuntimeError):
    """A session cannot be used as asked (e.g. saving a cookie session over socket.io)."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # Only called on text already matched by _VALUE_RE; may still raise on a bad length.
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: str, key: str) -> str:
    digest = hmac.new(key.encode("utf-8"), payload.encode("ascii"), hashlib.sha256).digest()
    return _b64encode(digest)


def encode_cookie(data: dict[str, Any], keys: list[str], now: float | None = None) -> str:
    """The signed cookie value carrying ``data`` (issued at ``now``, default the current time).

    Raises ValueError when ``keys`` is empty, ``data`` is not a JSON-serialisable dict, or the
    value would exceed what browsers keep (MAX_COOKIE_BYTES).
    """
    if not keys or not all(isinstance(key, str) and key for key in keys):
        raise ValueError("session keys are not set: configure 'keys' to sign session cookies")
    if not isinstance(data, dict):
        raise ValueError(f"session data must be a dict, got {type(data).__name__}")
    issued = time.time() if now is None else float(now)
    try:
        text = json.dumps({"d": data, "iat": issued}, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"session data is not JSON-serialisable: {exc}") from exc
    payload = _b64encode(text.encode("utf-8"))
    value = f"{payload}.{_sign(payload, keys[0])}"
    if len(value) > MAX_COOKIE_BYTES:
        raise ValueError(
            f"session cookie would be {len(value)} bytes, more than browsers keep "
            f"({MAX_COOKIE_BYTES}); store less in it or use session.store = 'redis'"
        )
    return value


def _decode(
    value: Any, keys: list[str], max_age: float | None, now: float | None
) -> tuple[dict[str, Any], float] | None:
    """(data, issued-at) of a valid cookie value, else None."""
    if not isinstance(value, str) or len(value) > MAX_COOKIE_BYTES:
        return None
    if not _VALUE_RE.fullmatch(value):
        return None
    payload, signature = value.split(".")
    given = signature.encode("ascii")
    # Every key is checked (no early exit), so timing does not tell which key matched.
    matched = False
    for key in keys:
        if isinstance(key, str) and key:
            matched |= hmac.compare_digest(_sign(payload, key).encode("ascii"), given)
    if not matched:
        return None
    try:
        body = json.loads(_b64decode(payload).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    data, issued = body.get("d"), body.get("iat")
    if not isinstance(data, dict) or isinstance(issued, bool):
        return None
    if not isinstance(issued, (int, float)) or not math.isfinite(issued):
        return None
    if max_age is not None:
        current = time.time() if now is None else now
        if current - issued > max_age:
            return None
    return data, float(issued)


def decode_cookie(
    value: str, keys: list[str], max_age: float | None = None, now: float | None = None
) -> dict[str, Any] | None:
    """The data of a cookie value made by :func:`encode_cookie`, or None.

    None when the value is malformed, signed by none of ``keys``, or issued more than
    ``max_age`` seconds before ``now`` (default the current time). Never raises on bad input.
    """
    decoded = _decode(value, keys, max_age, now)
    return None if decoded is None else decoded[0]


def session_cookie_header(
    data: dict[str, Any],
    keys: list[str],
    name: str = DEFAULT_COOKIE_NAME,
    max_age: float | None = None,
    path: str = "/",
    secure: bool = False,
) -> str:
    """A ``Set-Cookie`` header value (HttpOnly, SameSite=Lax) carrying ``data`` signed with keys.

    Meant for an HTTP view (e.g. a login page); the next socket.io handshake from that browser
    then has the session in ``ctx.session``. Raises ValueError as :func:`encode_cookie` does, or
    for a cookie name or path that cannot go in a header.
    """
    return _set_cookie(name, encode_cookie(data, keys), max_age, path, secure)


def expired_cookie_header(
    name: str = DEFAULT_COOKIE_NAME, path: str = "/", secure: bool = False
) -> str:
    """A ``Set-Cookie`` header value that makes the browser drop the session cookie (logout)."""
    return _set_cookie(name, "", 0, path, secure)


def _set_cookie(name: str, value: str, max_age: float | None, path: str, secure: bool) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid cookie name {name!r}")
    if not isinstance(path, str) or not path.startswith("/") or any(
        c == ";" or ord(c) < 0x20 or ord(c) == 0x7F for c in path
    ):
        raise ValueError(f"invalid cookie path {path!r}")
    parts = [f"{name}={value}", f"Path={path}"]
    if max_age is not None:
        parts.append(f"Max-Age={max(0, math.ceil(max_age))}")
    parts += ["HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


class _RedisStore:
    """Where a Redis-backed session's JSON lives, on a blocking client (eventlet). The asyncio
    store (``session_async.py``) writes the same keys and values, so both engines read each
    other's sessions."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def record(
        self, session_id: str, data: dict[str, Any], expires_at: float | None
    ) -> tuple[str, str, int | None]:
        """(key, JSON text, expiry in ms or None) of a session to write. Raises SessionError
        for an expired session, TypeError/ValueError for data that is not JSON."""
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
        if expires_at is None:
            return self.prefix + session_id, text, None
        # The data lives exactly as long as the cookie that names it stays valid.
        remaining_ms = math.ceil((expires_at - time.time()) * 1000)
        if remaining_ms <= 0:
            raise SessionError("the session has expired; it cannot be saved")
        return self.prefix + session_id, text, remaining_ms

    @staticmethod
    def parse(raw: Any) -> Any:
        """The data of what Redis holds for a session ({} for nothing). Raises ValueError or
        UnicodeDecodeError for what is not JSON."""
        if raw is None:
            return {}
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        return json.loads(raw)

    def write(self, session_id: str, data: dict[str, Any], expires_at: float | None) -> Any:
        key, text, px = self.record(session_id, data, expires_at)
        self.client.set(key, text, px=px)

    def read(self, session_id: str) -> Any:
        return self.parse(self.client.get(self.prefix + session_id))


class Session(dict[str, Any]):
    """The session of one socket.io connection: a dict, plus ``id`` and ``save()``.

    ``id`` is the Redis session id for the Redis store, None for the cookie store (and for a
    Redis-store connection that brought no valid session cookie).
    """

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        id: str | None = None,  # shadows the builtin: the public attribute is called id
        store: _RedisStore | None = None,
        expires_at: float | None = None,
    ) -> None:
        super().__init__(data or {})
        self.id = id
        self._store = store
        self._expires_at = expires_at

    def save(self) -> Any:
        """Write the session back to Redis (Redis store only). On eventlet the write is done
        when this returns; on asyncio it returns an awaitable that does it: ``await
        ctx.session.save()``.

        Raises SessionError for a cookie session (a socket.io connection cannot set cookies:
        the HTTP side must send a new cookie), for a connection without a Redis session id, or
        for an expired session; ValueError when the data is not JSON-serialisable; and
        redis.RedisError when Redis fails.
        """
        if self._store is None:
            raise SessionError(
                "a cookie session cannot be written back over a socket.io connection; set a new "
                "cookie from an HTTP view (session_cookie_header) or use session.store = 'redis'"
            )
        if self.id is None:
            raise SessionError(
                "this connection has no Redis session (no valid session cookie); create one "
                "from an HTTP view with new_redis_session_cookie"
            )
        try:
            # The store checks and encodes here; an asyncio store returns the write to await.
            return self._store.write(self.id, dict(self), self._expires_at)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"session data is not JSON-serialisable: {exc}") from exc


def new_redis_session_cookie(
    data: dict[str, Any],
    config: AppConfig,
    redis_client: redis.Redis,
    path: str = "/",
    secure: bool = False,
) -> str:
    """Store ``data`` as a new Redis-backed session; returns the ``Set-Cookie`` header value.

    The cookie (named ``config.session_key``) carries only the signed random session id; the
    data is stored under ``config.session_redis_prefix + id``, expiring after
    ``config.session_max_age`` seconds when that is set. Raises ValueError for missing keys or
    data that is not JSON-serialisable, redis.RedisError when Redis fails. (An ASGI view awaits
    ``session_async.new_redis_session_cookie_async`` instead.)
    """
    session, header = new_redis_session(data, config, _RedisStore(
        redis_client, config.session_redis_prefix), path, secure)
    session.save()
    return header


def new_redis_session(
    data: dict[str, Any], config: AppConfig, store: _RedisStore, path: str, secure: bool
) -> tuple[Session, str]:
    """A new Redis-backed session on ``store`` (not saved yet) and its ``Set-Cookie`` header
    value; ValueError for missing keys."""
    if not config.keys:
        raise ValueError("session keys are not set: configure 'keys' to sign session cookies")
    session_id = secrets.token_urlsafe(32)
    issued = time.time()
    value = encode_cookie({"sid": session_id}, config.keys, now=issued)
    expires_at = None if config.session_max_age is None else issued + config.session_max_age
    session = Session(data, id=session_id, store=store, expires_at=expires_at)
    return session, _set_cookie(config.session_key, value, config.session_max_age, path, secure)


def cookie_values(header: str, name: str) -> list[str]:
    """Every value of cookie ``name`` in a ``Cookie`` request header, in order.

    Each ``;``-separated pair is parsed on its own, because SimpleCookie stops at the first
    pair it cannot parse and would hide the session behind someone else's garbage cookie.
    """
    values = []
    for piece in header.split(";"):
        if name not in piece:
            continue
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(piece.strip())
        except CookieError:
            continue
        morsel = jar.get(name)
        if morsel is not None:
            values.append(morsel.value)
    return values


class SessionLoader:
    """Builds each connection's :class:`Session` from its handshake environ (eventlet: Redis is
    read with blocking calls; ``session_async.AsyncSessionLoader`` awaits them).

    Construct once per worker process with the app's config, a Redis client (required for
    ``session.store = "redis"``, else unused) and a logger. Raises ValueError when the Redis
    store is configured without a client.
    """

    #: The store class that wraps the Redis client.
    store_class: type[_RedisStore] = _RedisStore

    def __init__(
        self,
        config: AppConfig,
        redis_client: Any,
        logger: logging.Logger | logging.LoggerAdapter,
    ) -> None:
        if config.session_store == "redis" and redis_client is None:
            raise ValueError(
                "session.store is 'redis' but no Redis is configured: set io.redis or --redis"
            )
        self.config = config
        self.logger = logger
        self._store = (
            self.store_class(redis_client, config.session_redis_prefix)
            if config.session_store == "redis" and redis_client is not None
            else None
        )
        self._warned_no_keys = False

    def load(self, environ: dict[str, Any]) -> Session:
        """The session the handshake's cookie names; an empty Session when there is none.

        Never raises for a bad cookie or a failing Redis: the connection goes ahead with an
        empty session (logged at debug level, or once as a warning when ``keys`` is unset, or
        as a warning when Redis fails).
        """
        found = self.find(environ)
        if isinstance(found, Session):
            return found
        session_id, issued = found
        try:
            data = self._store.read(session_id)  # type: ignore[union-attr]
        except redis.RedisError as exc:
            return self.unavailable(exc)
        except (UnicodeDecodeError, ValueError, RecursionError):
            data = None
        return self.redis_session(session_id, issued, data)

    def find(self, environ: dict[str, Any]) -> Session | tuple[str, float]:
        """The session of a handshake that needs no Redis read (cookie sessions, and empty
        ones), else the (session id, issued-at) of the Redis session to read."""
        name = self.config.session_key
        header = environ.get("HTTP_COOKIE")
        values = cookie_values(header, name) if isinstance(header, str) else []
        if not values:
            self.logger.debug("no %s cookie in the handshake; empty session", name)
            return self._empty()
        if not self.config.keys:
            if not self._warned_no_keys:
                self._warned_no_keys = True
                self.logger.warning(
                    "a %s session cookie arrived but 'keys' is not set in the config; "
                    "set keys to read sessions (sessions stay empty until then)",
                    name,
                )
            return self._empty()
        # A browser may send several cookies of that name (different paths): take the first
        # one that is valid.
        for value in values:
            decoded = _decode(value, self.config.keys, self.config.session_max_age, None)
            if decoded is None:
                continue
            data, issued = decoded
            if self._store is None:
                return Session(data)
            session_id = data.get("sid")
            if isinstance(session_id, str) and _SESSION_ID_RE.fullmatch(session_id):
                return session_id, issued
        self.logger.debug("%s cookie invalid or expired; empty session", name)
        return self._empty()

    def _empty(self) -> Session:
        return Session(store=self._store)

    def unavailable(self, exc: Exception) -> Session:
        """Redis failed while reading a session: an empty one (logged as a warning)."""
        self.logger.warning(
            "session store unavailable (%s: %s); continuing with an empty session",
            type(exc).__name__,
            exc,
        )
        return self._empty()

    def redis_session(self, session_id: str, issued: float, data: Any) -> Session:
        """The Redis session ``session_id`` holding ``data`` (None: unreadable), expiring with
        its cookie; data that is not a JSON object gives an empty one (warned)."""
        max_age = self.config.session_max_age
        expires_at = None if max_age is None else issued + max_age
        if not isinstance(data, dict):
            self.logger.warning(
                "session data in Redis is not a JSON object; continuing with an empty session"
            )
            data = {}
        return Session(data, id=session_id, store=self._store, expires_at=expires_at)
