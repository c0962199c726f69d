"""Signed session cookies and the Redis session store (sioctl.worker.framework.session).

The Redis tests run against the session's real redis-server (the ``redis_url`` fixture); every
test uses its own key prefix so tests never see each other's sessions.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from sioctl.worker.framework.config import AppConfig
from sioctl.worker.framework.session import (
    MAX_COOKIE_BYTES,
    Session,
    SessionError,
    SessionLoader,
    cookie_values,
    decode_cookie,
    encode_cookie,
    expired_cookie_header,
    new_redis_session_cookie,
    session_cookie_header,
)
from sioctl.worker.framework.session_async import (
    AsyncSessionLoader,
    new_redis_session_cookie_async,
)
from tests.support.clients import free_port

KEY = "first-secret-key-0123456789"
OLD_KEY = "older-secret-key-9876543210"
LOGGER_NAME = "sioctl.test.session"


def make_config(**overrides: Any) -> AppConfig:
    settings: dict[str, Any] = {"app_dir": "/nonexistent", "env": "test", "keys": [KEY]}
    settings.update(overrides)
    return AppConfig(**settings)


def cookie_pair(set_cookie: str) -> tuple[str, str]:
    """(name, value) of a Set-Cookie header value."""
    name, _, value = set_cookie.split(";")[0].partition("=")
    return name, value


def environ_with(cookie_header: str | None) -> dict[str, Any]:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/socket.io/"}
    if cookie_header is not None:
        environ["HTTP_COOKIE"] = cookie_header
    return environ


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    return logging.getLogger(LOGGER_NAME)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return f"test:sess:{uuid.uuid4().hex}:"


def stored(client: redis.Redis, key: str) -> Any:
    """The JSON value stored under ``key`` in Redis."""
    raw = client.get(key)
    assert raw is not None, "no session data in Redis"
    return json.loads(raw)


def session_id(cookie_value: str, keys: list[str]) -> str:
    """The Redis session id a signed cookie value carries."""
    data = decode_cookie(cookie_value, keys)
    assert data is not None and isinstance(data.get("sid"), str)
    return str(data["sid"])


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER_NAME and r.levelno == level]


# --- encode_cookie / decode_cookie ---------------------------------------------------------


def test_round_trip() -> None:
    data = {"user": "ana", "roles": ["admin", "dev"], "n": 3, "ok": True, "x": None, "é": "ü"}
    value = encode_cookie(data, [KEY])
    assert decode_cookie(value, [KEY]) == data
    # Only cookie-safe characters: no quoting needed in a Set-Cookie header.
    assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_empty_data_round_trips() -> None:
    assert decode_cookie(encode_cookie({}, [KEY]), [KEY]) == {}


def flip(text: str, index: int) -> str:
    """``text`` with the base64url character at ``index`` changed."""
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


def test_tampered_payload_is_rejected() -> None:
    value = encode_cookie({"user": "ana"}, [KEY])
    payload, signature = value.split(".")
    assert decode_cookie(f"{flip(payload, 5)}.{signature}", [KEY]) is None
    # A payload of the attacker's choosing, with the original signature.
    forged = base64.urlsafe_b64encode(
        json.dumps({"d": {"user": "root"}, "iat": 0}).encode()
    ).rstrip(b"=").decode()
    assert decode_cookie(f"{forged}.{signature}", [KEY]) is None


def test_tampered_signature_is_rejected() -> None:
    value = encode_cookie({"user": "ana"}, [KEY])
    payload, signature = value.split(".")
    assert decode_cookie(f"{payload}.{flip(signature, 3)}", [KEY]) is None
    assert decode_cookie(f"{payload}.{signature[:-2]}", [KEY]) is None
    assert decode_cookie(f"{payload}.", [KEY]) is None


def test_key_rotation() -> None:
    old_cookie = encode_cookie({"user": "ana"}, [OLD_KEY])
    # The old key listed second still reads cookies it signed ...
    assert decode_cookie(old_cookie, [KEY, OLD_KEY]) == {"user": "ana"}
    # ... new cookies are signed with the first key only ...
    new_cookie = encode_cookie({"user": "bo"}, [KEY, OLD_KEY])
    assert decode_cookie(new_cookie, [KEY]) == {"user": "bo"}
    assert decode_cookie(new_cookie, [OLD_KEY]) is None
    # ... and a key nobody lists is rejected.
    stranger = encode_cookie({"user": "eve"}, ["some-unknown-key"])
    assert decode_cookie(stranger, [KEY, OLD_KEY]) is None
    assert decode_cookie(old_cookie, []) is None


def test_max_age() -> None:
    value = encode_cookie({"user": "ana"}, [KEY], now=1_000_000.0)
    assert decode_cookie(value, [KEY], max_age=60, now=1_000_000.0) == {"user": "ana"}
    assert decode_cookie(value, [KEY], max_age=60, now=1_000_060.0) == {"user": "ana"}
    assert decode_cookie(value, [KEY], max_age=60, now=1_000_060.5) is None
    # Without max_age the age does not matter.
    assert decode_cookie(value, [KEY], now=9_000_000_000.0) == {"user": "ana"}


def signed(payload_json: str) -> str:
    """A correctly signed cookie value around an arbitrary JSON text."""
    import hashlib
    import hmac

    payload = base64.urlsafe_b64encode(payload_json.encode()).rstrip(b"=").decode()
    digest = hmac.new(KEY.encode(), payload.encode(), hashlib.sha256).digest()
    return payload + "." + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "nodot",
        ".",
        "a.b.c",
        "!!!!.????",
        "abc.def",
        "A.B",  # base64 of impossible length
        "é.é",
        "\x00.\x00",
        "a" * 1_000_000 + "." + "b" * 1_000_000,
        "a" * (MAX_COOKIE_BYTES + 1),
        None,
        12345,
        b"bytes.value",
    ],
)
def test_garbage_is_rejected_without_raising(value: Any) -> None:
    assert decode_cookie(value, [KEY]) is None
    assert decode_cookie(value, [KEY], max_age=10) is None


@pytest.mark.parametrize(
    "payload_json",
    [
        "[1, 2, 3]",
        '"text"',
        "42",
        "null",
        "{not json",
        '{"d": [1], "iat": 1}',
        '{"d": {}, "iat": "yesterday"}',
        '{"d": {}, "iat": true}',
        '{"d": {}}',
        '{"iat": 1}',
        '{"d": {}, "iat": NaN}',
        "[" * 1400 + "]" * 1400,  # deeper than json's recursion limit
    ],
)
def test_signed_but_malformed_payload_is_rejected(payload_json: str) -> None:
    value = signed(payload_json)
    assert len(value) <= MAX_COOKIE_BYTES
    assert decode_cookie(value, [KEY], max_age=10) is None


def test_encode_errors() -> None:
    with pytest.raises(ValueError, match="keys"):
        encode_cookie({"a": 1}, [])
    with pytest.raises(ValueError, match="JSON"):
        encode_cookie({"a": object()}, [KEY])
    with pytest.raises(ValueError, match="JSON"):
        encode_cookie({"a": {1, 2}}, [KEY])
    with pytest.raises(ValueError, match="JSON"):
        encode_cookie({"a": float("nan")}, [KEY])
    not_a_dict: Any = ["not", "a", "dict"]
    with pytest.raises(ValueError, match="dict"):
        encode_cookie(not_a_dict, [KEY])
    with pytest.raises(ValueError, match="redis"):
        encode_cookie({"a": "x" * MAX_COOKIE_BYTES}, [KEY])


# --- Set-Cookie headers ----------------------------------------------------------------------


def test_session_cookie_header() -> None:
    header = session_cookie_header({"user": "ana"}, [KEY], max_age=3600, secure=True)
    name, value = cookie_pair(header)
    assert name == "SIOCTL_SESS"
    assert decode_cookie(value, [KEY]) == {"user": "ana"}
    attributes = [part.strip() for part in header.split(";")[1:]]
    assert attributes == ["Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax", "Secure"]

    plain = session_cookie_header({"user": "ana"}, [KEY], name="sid", path="/app")
    assert plain.startswith("sid=")
    assert [p.strip() for p in plain.split(";")[1:]] == ["Path=/app", "HttpOnly", "SameSite=Lax"]


def test_session_cookie_header_rejects_bad_name_and_path() -> None:
    with pytest.raises(ValueError, match="cookie name"):
        session_cookie_header({}, [KEY], name="bad name")
    with pytest.raises(ValueError, match="cookie name"):
        session_cookie_header({}, [KEY], name="a;b")
    with pytest.raises(ValueError, match="cookie path"):
        session_cookie_header({}, [KEY], path="/x; Domain=evil.example")


def test_expired_cookie_header() -> None:
    header = expired_cookie_header("SIOCTL_SESS", path="/")
    assert header == "SIOCTL_SESS=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"


def test_cookie_values_survive_garbage_cookies() -> None:
    header = 'a=1; b="unterminated; junk; bad name=1; expires=1; SIOCTL_SESS=one.two; SIOCTL_SESS=x'
    assert cookie_values(header, "SIOCTL_SESS") == ["one.two", "x"]
    assert cookie_values("", "SIOCTL_SESS") == []
    assert cookie_values(";;;===;", "SIOCTL_SESS") == []


# --- SessionLoader, cookie store -------------------------------------------------------------


def test_loader_reads_the_cookie_header(logger: logging.Logger) -> None:
    config = make_config(session_max_age=3600)
    header = session_cookie_header({"user": "ana"}, config.keys, max_age=3600)
    name, value = cookie_pair(header)
    # As a browser sends it: other cookies (one of them garbage) around ours.
    environ = environ_with(f'theme=dark; broken="x; junk; {name}={value}; lang=en')
    session = SessionLoader(config, None, logger).load(environ)
    assert isinstance(session, Session)
    assert session == {"user": "ana"}
    assert session.id is None


def test_loader_custom_cookie_name(logger: logging.Logger) -> None:
    config = make_config(session_key="myapp")
    value = encode_cookie({"user": "ana"}, config.keys)
    loader = SessionLoader(config, None, logger)
    assert loader.load(environ_with(f"myapp={value}")) == {"user": "ana"}
    assert loader.load(environ_with(f"SIOCTL_SESS={value}")) == {}


def test_loader_takes_the_first_valid_of_several_cookies(logger: logging.Logger) -> None:
    config = make_config()
    good = encode_cookie({"user": "ana"}, config.keys)
    bad = encode_cookie({"user": "eve"}, ["unknown-key"])
    environ = environ_with(f"SIOCTL_SESS={bad}; SIOCTL_SESS={good}")
    assert SessionLoader(config, None, logger).load(environ) == {"user": "ana"}


def test_loader_missing_or_invalid_cookie_gives_empty_session(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(session_max_age=60)
    loader = SessionLoader(config, None, logger)
    expired = encode_cookie({"user": "ana"}, config.keys, now=1000.0)
    for environ in (
        environ_with(None),
        environ_with(""),
        environ_with("other=1"),
        environ_with("SIOCTL_SESS=garbage"),
        environ_with(f"SIOCTL_SESS={expired}"),
        {"HTTP_COOKIE": 42},
    ):
        caplog.clear()
        session = loader.load(environ)
        assert session == {} and session.id is None
        assert len(records(caplog, logging.DEBUG)) == 1
        assert not records(caplog, logging.WARNING)


def test_loader_without_keys_warns_once(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    signed_elsewhere = encode_cookie({"user": "ana"}, [KEY])
    loader = SessionLoader(make_config(keys=[]), None, logger)
    # No cookie: nothing to warn about.
    assert loader.load(environ_with(None)) == {}
    assert not records(caplog, logging.WARNING)
    for _ in range(3):
        assert loader.load(environ_with(f"SIOCTL_SESS={signed_elsewhere}")) == {}
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "keys" in warnings[0].getMessage()


def test_cookie_session_cannot_be_saved(logger: logging.Logger) -> None:
    config = make_config()
    value = encode_cookie({"user": "ana"}, config.keys)
    session = SessionLoader(config, None, logger).load(environ_with(f"SIOCTL_SESS={value}"))
    session["visits"] = 1
    with pytest.raises(SessionError, match="cookie session cannot be written back"):
        session.save()


def test_redis_store_needs_a_client(logger: logging.Logger) -> None:
    with pytest.raises(ValueError, match="no Redis is configured"):
        SessionLoader(make_config(session_store="redis"), None, logger)


# --- SessionLoader, Redis store (real redis-server), on both engines --------------------------
# The same cases run on the eventlet side (SessionLoader, blocking redis-py) and the asyncio side
# (AsyncSessionLoader, redis.asyncio); what is stored is always inspected with the blocking
# client, so each case also shows that both engines write the same keys and values.


class SyncSide:
    """The eventlet side: blocking calls."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def loader(self, config: AppConfig, logger: logging.Logger, client: Any = None) -> Any:
        return SessionLoader(config, self.client if client is None else client, logger)

    def load(self, loader: Any, environ: dict[str, Any]) -> Session:
        return loader.load(environ)  # type: ignore[no-any-return]

    def save(self, session: Session) -> None:
        session.save()

    def new_cookie(self, data: dict[str, Any], config: AppConfig) -> str:
        return new_redis_session_cookie(data, config, self.client)

    def dead_client(self) -> Any:
        # A real client aimed at a port nobody listens on; no retries: it fails at once.
        return redis.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))

    def close(self, client: Any) -> None:
        client.close()


class AsyncSide(SyncSide):
    """The asyncio side: each call awaited on a loop of its own."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = redis.asyncio.Redis.from_url(url)  # type: ignore[assignment]

    def loader(self, config: AppConfig, logger: logging.Logger, client: Any = None) -> Any:
        return AsyncSessionLoader(config, self.client if client is None else client, logger)

    def load(self, loader: Any, environ: dict[str, Any]) -> Session:
        return self.loop.run_until_complete(loader.load(environ))  # type: ignore[no-any-return]

    def save(self, session: Session) -> None:
        self.loop.run_until_complete(session.save())

    def new_cookie(self, data: dict[str, Any], config: AppConfig) -> str:
        return self.loop.run_until_complete(
            new_redis_session_cookie_async(data, config, self.client))  # type: ignore[arg-type]

    def dead_client(self) -> Any:
        return redis.asyncio.Redis(host="127.0.0.1", port=free_port(),
                                   retry=AsyncRetry(NoBackoff(), 0))

    def close(self, client: Any) -> None:
        self.loop.run_until_complete(client.aclose())


@pytest.fixture(params=[SyncSide, AsyncSide], ids=["eventlet", "asyncio"])
def side(request: pytest.FixtureRequest, redis_url: str) -> Iterator[SyncSide]:
    made = request.param(redis_url)
    yield made
    made.close(made.client)
    if isinstance(made, AsyncSide):
        made.loop.close()


def test_redis_session_create_load_save_reload(
    side: SyncSide, redis_client: redis.Redis, prefix: str, logger: logging.Logger
) -> None:
    config = make_config(session_store="redis", session_redis_prefix=prefix, session_max_age=600)
    header = side.new_cookie({"user": "ana"}, config)
    name, value = cookie_pair(header)
    assert name == "SIOCTL_SESS"
    assert "Max-Age=600" in header and "HttpOnly" in header

    # The cookie carries only the signed id; the data is JSON in Redis, expiring with it.
    cookie_data = decode_cookie(value, config.keys)
    assert cookie_data is not None and set(cookie_data) == {"sid"}
    key = prefix + cookie_data["sid"]
    assert stored(redis_client, key) == {"user": "ana"}
    assert 0 < redis_client.pttl(key) <= 600_000

    loader = side.loader(config, logger)
    session = side.load(loader, environ_with(f"a=b; {name}={value}"))
    assert session == {"user": "ana"}
    assert session.id == cookie_data["sid"]

    session["visits"] = 2
    side.save(session)
    assert stored(redis_client, key) == {"user": "ana", "visits": 2}
    # Saving keeps the expiry tied to the cookie's lifetime.
    assert 0 < redis_client.pttl(key) <= 600_000

    reloaded = side.load(loader, environ_with(f"{name}={value}"))
    assert reloaded == {"user": "ana", "visits": 2}
    assert reloaded.id == session.id


def test_redis_session_without_max_age_does_not_expire(
    side: SyncSide, redis_client: redis.Redis, prefix: str, logger: logging.Logger
) -> None:
    config = make_config(session_store="redis", session_redis_prefix=prefix)
    header = side.new_cookie({"n": 1}, config)
    assert "Max-Age" not in header
    _, value = cookie_pair(header)
    session = side.load(side.loader(config, logger), environ_with(f"SIOCTL_SESS={value}"))
    assert session.id is not None
    assert redis_client.ttl(prefix + session.id) == -1
    session["n"] = 2
    side.save(session)
    assert redis_client.ttl(prefix + session.id) == -1
    assert stored(redis_client, prefix + session.id) == {"n": 2}


def test_redis_session_missing_key_gives_empty_session_with_id(
    side: SyncSide, redis_client: redis.Redis, prefix: str, logger: logging.Logger
) -> None:
    config = make_config(session_store="redis", session_redis_prefix=prefix, session_max_age=600)
    _, value = cookie_pair(side.new_cookie({"user": "ana"}, config))
    sid = session_id(value, config.keys)
    redis_client.delete(prefix + sid)

    session = side.load(side.loader(config, logger), environ_with(f"SIOCTL_SESS={value}"))
    assert session == {} and session.id == sid
    session["user"] = "back"
    side.save(session)
    assert stored(redis_client, prefix + sid) == {"user": "back"}
    assert 0 < redis_client.pttl(prefix + sid) <= 600_000


def test_redis_session_without_cookie_cannot_be_saved(
    side: SyncSide, redis_client: redis.Redis, prefix: str, logger: logging.Logger
) -> None:
    config = make_config(session_store="redis", session_redis_prefix=prefix)
    session = side.load(side.loader(config, logger), environ_with(None))
    assert session == {} and session.id is None
    session["x"] = 1
    with pytest.raises(SessionError, match="new_redis_session_cookie"):
        side.save(session)


def test_redis_session_rejects_a_forged_or_plain_cookie(
    side: SyncSide, redis_client: redis.Redis, prefix: str, logger: logging.Logger
) -> None:
    config = make_config(session_store="redis", session_redis_prefix=prefix)
    _, value = cookie_pair(side.new_cookie({"user": "ana"}, config))
    loader = side.loader(config, logger)
    forged = encode_cookie(decode_cookie(value, config.keys) or {}, ["unknown-key"])
    assert side.load(loader, environ_with(f"SIOCTL_SESS={forged}")).id is None
    # A cookie-store cookie (data, no session id) is no Redis session.
    plain = encode_cookie({"user": "ana"}, config.keys)
    assert side.load(loader, environ_with(f"SIOCTL_SESS={plain}")).id is None


def test_redis_session_unsaveable_data(
    side: SyncSide, redis_client: redis.Redis, prefix: str, logger: logging.Logger
) -> None:
    config = make_config(session_store="redis", session_redis_prefix=prefix)
    with pytest.raises(ValueError, match="JSON"):
        side.new_cookie({"x": object()}, config)
    _, value = cookie_pair(side.new_cookie({}, config))
    session = side.load(side.loader(config, logger), environ_with(f"SIOCTL_SESS={value}"))
    session["x"] = {1, 2}
    with pytest.raises(ValueError, match="JSON"):
        side.save(session)


def test_redis_corrupt_data_gives_empty_session(
    side: SyncSide,
    redis_client: redis.Redis,
    prefix: str,
    logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(session_store="redis", session_redis_prefix=prefix)
    _, value = cookie_pair(side.new_cookie({"user": "ana"}, config))
    sid = session_id(value, config.keys)
    loader = side.loader(config, logger)
    for corrupt in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        caplog.clear()
        redis_client.set(prefix + sid, corrupt)
        session = side.load(loader, environ_with(f"SIOCTL_SESS={value}"))
        assert session == {} and session.id == sid
        assert len(records(caplog, logging.WARNING)) == 1


def test_redis_down_gives_empty_session_and_one_warning(
    side: SyncSide,
    redis_client: redis.Redis,
    prefix: str,
    logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(session_store="redis", session_redis_prefix=prefix)
    _, value = cookie_pair(side.new_cookie({"user": "ana"}, config))
    dead = side.dead_client()
    try:
        session = side.load(side.loader(config, logger, dead), environ_with(f"SIOCTL_SESS={value}"))
    finally:
        side.close(dead)
    assert session == {} and session.id is None
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "session store unavailable" in warnings[0].getMessage()


def test_both_engines_read_each_others_sessions(
    redis_url: str, redis_client: redis.Redis, prefix: str, logger: logging.Logger
) -> None:
    """A session an eventlet worker created is read and saved by an asyncio worker, whose save
    the eventlet worker reads (a cluster may run both while moving an app over)."""
    config = make_config(session_store="redis", session_redis_prefix=prefix, session_max_age=600)
    eventlet, asyncio_side = SyncSide(redis_url), AsyncSide(redis_url)
    try:
        _, value = cookie_pair(eventlet.new_cookie({"user": "ana"}, config))
        environ = environ_with(f"SIOCTL_SESS={value}")
        on_asyncio = asyncio_side.load(asyncio_side.loader(config, logger), environ)
        assert on_asyncio == {"user": "ana"}
        on_asyncio["seen_on"] = "asyncio"
        asyncio_side.save(on_asyncio)
        assert eventlet.load(eventlet.loader(config, logger), environ) == {
            "user": "ana", "seen_on": "asyncio"}
        _, value = cookie_pair(asyncio_side.new_cookie({"user": "bo"}, config))
        assert eventlet.load(eventlet.loader(config, logger),
                             environ_with(f"SIOCTL_SESS={value}")) == {"user": "bo"}
    finally:
        eventlet.close(eventlet.client)
        asyncio_side.close(asyncio_side.client)
        asyncio_side.loop.close()


# --- logs never show secrets -----------------------------------------------------------------


def test_logs_never_show_keys_cookie_values_or_session_ids(
    redis_client: redis.Redis,
    prefix: str,
    logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets_seen: list[str] = [KEY, OLD_KEY]
    cookie_config = make_config(keys=[KEY, OLD_KEY], session_max_age=60)
    cookie_loader = SessionLoader(cookie_config, None, logger)
    good = encode_cookie({"user": "ana"}, [OLD_KEY])
    expired = encode_cookie({"user": "ana"}, [KEY], now=1000.0)
    forged = encode_cookie({"user": "eve"}, ["unknown-key"])
    secrets_seen += [good, expired, forged, "garbage-cookie-value"]
    for value in (good, expired, forged, "garbage-cookie-value"):
        cookie_loader.load(environ_with(f"SIOCTL_SESS={value}"))
    cookie_loader.load(environ_with(None))

    SessionLoader(make_config(keys=[]), None, logger).load(environ_with(f"SIOCTL_SESS={good}"))

    redis_config = make_config(
        keys=[KEY, OLD_KEY], session_store="redis", session_redis_prefix=prefix
    )
    _, redis_value = cookie_pair(new_redis_session_cookie({"u": 1}, redis_config, redis_client))
    sid = session_id(redis_value, [KEY])
    secrets_seen += [redis_value, sid]
    SessionLoader(redis_config, redis_client, logger).load(
        environ_with(f"SIOCTL_SESS={redis_value}")
    )
    redis_client.set(prefix + sid, b"{corrupt")
    SessionLoader(redis_config, redis_client, logger).load(
        environ_with(f"SIOCTL_SESS={redis_value}")
    )
    dead = redis.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    try:
        SessionLoader(redis_config, dead, logger).load(environ_with(f"SIOCTL_SESS={redis_value}"))
    finally:
        dead.close()

    assert records(caplog, logging.DEBUG) and records(caplog, logging.WARNING)
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets_seen:
        assert secret not in logged
        # Neither half of a cookie value shows up either.
        for part in secret.split("."):
            assert part not in logged
