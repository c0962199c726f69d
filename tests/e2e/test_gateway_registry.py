"""The gateway's registry of who is online, against a real redis-server and in memory.

The same behaviour tests run on every implementation: Redis with the blocking client
(eventlet), Redis with ``redis.asyncio`` (the asyncio engine, each call run to completion on a
loop of the test's), and memory. Expiry on Redis uses real (short) TTLs
and waits for the keys to vanish; in memory a fake clock moves time forward.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from sioctl.worker.gateway.async_registry import AsyncRedisRegistry
from sioctl.worker.gateway.memory_registry import MemoryRegistry
from sioctl.worker.gateway.registry import (
    Rebind,
    RedisRegistry,
    Registry,
    RegistryError,
)
from tests.support.clients import free_port

# Short TTL for the expiry tests (seconds). Redis expires keys within a few ms of their TTL.
SHORT_TTL = 1.0
# TTL for the refresh tests: refreshing every REFRESH_TTL / 4 leaves a wide margin for a slow
# machine while the loop still runs past the original expiry.
REFRESH_TTL = 2.0
# Upper bound on any wait for Redis to expire a key; a bound, not a timing assertion.
EXPIRY_WAIT = 10.0


class FakeClock:
    """A monotonic clock the memory registry reads; tests move it forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    """One registry under test, and how to let time pass for it."""

    registry: Registry
    # Let `seconds` pass (sleeps on Redis, moves the fake clock in memory).
    advance: Callable[[float], None]
    redis: redis.Redis | None
    prefix: str


_counter = itertools.count()


def _unique_prefix() -> str:
    return f"t{next(_counter)}-{uuid.uuid4().hex[:8]}:gw:"


def _redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


class Awaited:
    """The asyncio registry called from a test: each of its coroutines run to completion."""

    def __init__(self, registry: AsyncRedisRegistry, loop: asyncio.AbstractEventLoop) -> None:
        self.registry = registry
        self.loop = loop

    @property
    def ttl(self) -> float:
        return self.registry.ttl

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.registry, name)
        return lambda *args, **kwargs: self.loop.run_until_complete(method(*args, **kwargs))


@pytest.fixture(params=["redis", "redis-asyncio", "memory"])
def make(request: pytest.FixtureRequest) -> Iterator[Callable[..., Setup]]:
    """Factory ``make(ttl=60.0)`` building the registry of this parametrization."""
    clients: list[redis.Redis] = []
    loop = asyncio.new_event_loop()
    async_clients: list[redis.asyncio.Redis] = []

    def build(ttl: float = 60.0) -> Setup:
        if request.param == "memory":
            clock = FakeClock()

            def advance(seconds: float) -> None:
                clock.now += seconds

            return Setup(MemoryRegistry(ttl=ttl, clock=clock), advance, None, "")
        client = _redis_client(request.getfixturevalue("redis_url"))
        clients.append(client)
        prefix = _unique_prefix()
        if request.param == "redis-asyncio":
            async_clients.append(redis.asyncio.Redis.from_url(request.getfixturevalue(
                "redis_url"), socket_timeout=5, socket_connect_timeout=5))
            registry: Any = Awaited(AsyncRedisRegistry(async_clients[-1], prefix, ttl=ttl), loop)
            return Setup(registry, time.sleep, client, prefix)
        return Setup(RedisRegistry(client, prefix, ttl=ttl), time.sleep, client, prefix)

    yield build
    for client in clients:
        client.close()
    for async_client in async_clients:
        loop.run_until_complete(async_client.aclose())
    loop.close()


def _wait_until_gone(client: redis.Redis, *keys: str) -> None:
    """Wait (bounded) until none of ``keys`` exists in Redis."""
    deadline = time.monotonic() + EXPIRY_WAIT
    while client.exists(*keys):
        assert time.monotonic() < deadline, f"keys still present after {EXPIRY_WAIT}s: {keys}"
        time.sleep(0.05)


def _let_expire(setup: Setup, seconds: float, *keys: str) -> None:
    """Let ``seconds`` pass; on Redis also wait until the given keys have really expired."""
    setup.advance(seconds)
    if setup.redis is not None and keys:
        _wait_until_gone(setup.redis, *[setup.prefix + key for key in keys])


# ---------------------------------------------------------------------------------------------
# behaviour, on both implementations


def test_register_resolves_by_sid_and_by_user(make: Callable[..., Setup]) -> None:
    reg = make().registry
    reg.register("sid-a", "user-a", "appOne")
    assert reg.resolve("sid-a") == "sid-a"
    assert reg.resolve("user-a") == "sid-a"
    assert reg.user_of("sid-a") == "user-a"
    assert reg.app_of("sid-a") == "appOne"


def test_unknown_targets_are_offline(make: Callable[..., Setup]) -> None:
    reg = make().registry
    assert reg.resolve("nobody") is None
    assert reg.user_of("nobody") is None
    assert reg.app_of("nobody") is None
    assert reg.set_app("nobody", "appOne") is False
    assert reg.rebind("user-x", "nobody") == Rebind(False)
    assert reg.resolve("user-x") is None
    reg.unregister("nobody")  # harmless
    reg.refresh(["nobody"])  # harmless
    assert reg.resolve("nobody") is None


def test_app_unknown_until_set(make: Callable[..., Setup]) -> None:
    reg = make().registry
    reg.register("sid-a", "user-a", None)
    assert reg.app_of("sid-a") is None
    assert reg.set_app("sid-a", "appTwo") is True
    assert reg.app_of("sid-a") == "appTwo"
    assert reg.user_of("sid-a") == "user-a"


def test_values_are_str(make: Callable[..., Setup]) -> None:
    reg = make().registry
    reg.register("sid-ü", "user-ü", "app-ü")
    for value in (reg.resolve("user-ü"), reg.user_of("sid-ü"), reg.app_of("sid-ü")):
        assert isinstance(value, str)
    assert reg.resolve("user-ü") == "sid-ü"


def test_unregister_removes_client_and_user(make: Callable[..., Setup]) -> None:
    setup = make()
    reg = setup.registry
    reg.register("sid-a", "user-a", "appOne")
    reg.unregister("sid-a")
    assert reg.resolve("sid-a") is None
    assert reg.resolve("user-a") is None
    assert reg.user_of("sid-a") is None
    if setup.redis is not None:
        assert not setup.redis.keys(setup.prefix + "*")


def test_rebind_never_moves_a_live_users_id_silently(make: Callable[..., Setup]) -> None:
    reg = make().registry
    reg.register("owner", "user-u", "appOne")
    reg.register("claimant", "user-fresh", "appOne")
    # Refused, and the answer names the live holder; nothing moved.
    assert reg.rebind("user-u", "claimant") == Rebind(False, "owner")
    assert reg.resolve("user-u") == "owner"
    assert reg.user_of("claimant") == "user-fresh"
    assert reg.resolve("user-fresh") == "claimant"
    # Taken over: moved, and the answer names the holder that lost it.
    assert reg.rebind("user-u", "claimant", take_over=True) == Rebind(True, "owner")
    assert reg.resolve("user-u") == "claimant"
    assert reg.resolve("user-fresh") is None
    # A userId whose socket has gone (a stale mapping) is free to claim.
    reg.register("third", "user-t", "appOne")
    reg.unregister("claimant")
    reg.register("fourth", "user-4", "appOne")
    assert reg.rebind("user-t", "fourth").ok is False
    reg.unregister("third")
    assert reg.rebind("user-t", "fourth") == Rebind(True)


def test_rebind_survives_the_old_socket_leaving(make: Callable[..., Setup]) -> None:
    reg = make().registry
    reg.register("old-sid", "user-u", "appOne")
    # The reconnected socket got a fresh userId, then presents its previous one (the old
    # socket still online: only a take-over moves it).
    reg.register("new-sid", "user-fresh", "appOne")
    assert reg.rebind("user-u", "new-sid", take_over=True) == Rebind(True, "old-sid")
    assert reg.resolve("user-u") == "new-sid"
    assert reg.user_of("new-sid") == "user-u"
    # The fresh userId no longer reaches the socket that gave it up.
    assert reg.resolve("user-fresh") is None
    # The old socket's disconnect arrives late: the user stays on the new socket.
    reg.unregister("old-sid")
    assert reg.resolve("old-sid") is None
    assert reg.resolve("user-u") == "new-sid"
    assert reg.resolve("new-sid") == "new-sid"
    # When the new socket leaves too, the user is gone.
    reg.unregister("new-sid")
    assert reg.resolve("user-u") is None


def test_rebind_to_the_same_user_is_harmless(make: Callable[..., Setup]) -> None:
    reg = make().registry
    reg.register("sid-a", "user-a", "appOne")
    assert reg.rebind("user-a", "sid-a") == Rebind(True)
    assert reg.resolve("user-a") == "sid-a"
    assert reg.user_of("sid-a") == "user-a"


def test_entries_expire_without_refresh(make: Callable[..., Setup]) -> None:
    setup = make(ttl=SHORT_TTL)
    reg = setup.registry
    reg.register("sid-a", "user-a", "appOne")
    assert reg.resolve("user-a") == "sid-a"
    _let_expire(setup, SHORT_TTL + 0.2, "client:sid-a", "user:user-a")
    assert reg.resolve("sid-a") is None
    assert reg.resolve("user-a") is None
    assert reg.user_of("sid-a") is None
    assert reg.set_app("sid-a", "appTwo") is False
    if setup.redis is not None:
        # set_app on a gone socket must not bring its key back.
        assert not setup.redis.keys(setup.prefix + "*")


def test_refresh_keeps_entries_alive(make: Callable[..., Setup]) -> None:
    setup = make(ttl=REFRESH_TTL)
    reg = setup.registry
    reg.register("sid-a", "user-a", "appOne")
    reg.register("sid-b", "user-b", "appOne")
    # Refresh sid-a well within its TTL, several times, past the original expiry of both.
    for _ in range(5):
        setup.advance(REFRESH_TTL / 4)
        reg.refresh(["sid-a", "unknown-sid"])
    assert reg.resolve("sid-a") == "sid-a"
    assert reg.resolve("user-a") == "sid-a"
    # sid-b was never refreshed.
    _let_expire(setup, 0.0, "client:sid-b", "user:user-b")
    assert reg.resolve("user-b") is None
    # Without refresh, sid-a goes too.
    _let_expire(setup, REFRESH_TTL + 0.2, "client:sid-a", "user:user-a")
    assert reg.resolve("user-a") is None


def test_refresh_renews_the_rebound_user(make: Callable[..., Setup]) -> None:
    setup = make(ttl=REFRESH_TTL)
    reg = setup.registry
    reg.register("sid-a", "user-fresh", "appOne")
    assert reg.rebind("user-u", "sid-a").ok
    for _ in range(5):
        setup.advance(REFRESH_TTL / 4)
        reg.refresh(["sid-a"])
    assert reg.resolve("user-u") == "sid-a"


def test_claim_nonce_once_then_after_expiry(make: Callable[..., Setup]) -> None:
    setup = make()
    reg = setup.registry
    assert reg.claim_nonce("appOne", "n-1", SHORT_TTL) is True
    assert reg.claim_nonce("appOne", "n-1", SHORT_TTL) is False  # replay
    # The same nonce for another app, and another nonce, are independent.
    assert reg.claim_nonce("appTwo", "n-1", SHORT_TTL) is True
    assert reg.claim_nonce("appOne", "n-2", SHORT_TTL) is True
    _let_expire(setup, SHORT_TTL + 0.2, "nonce:appOne:n-1")
    assert reg.claim_nonce("appOne", "n-1", 30.0) is True
    assert reg.claim_nonce("appOne", "n-1", 30.0) is False


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan"), float("inf")])
def test_bad_ttl_is_refused(make: Callable[..., Setup], ttl: float) -> None:
    reg = make().registry
    with pytest.raises(ValueError, match="ttl"):
        reg.claim_nonce("appOne", "n", ttl)


# ---------------------------------------------------------------------------------------------
# Redis specifics


def test_redis_layout(redis_url: str) -> None:
    client = _redis_client(redis_url)
    prefix = _unique_prefix()
    reg = RedisRegistry(client, prefix, ttl=30.0)
    reg.register("sid-a", "user-a", "appOne")
    reg.claim_nonce("appOne", "n-1", 30.0)
    assert client.hgetall(prefix + "client:sid-a") == {b"user": b"user-a", b"app": b"appOne"}
    assert client.get(prefix + "user:user-a") == b"sid-a"
    assert client.get(prefix + "nonce:appOne:n-1") is not None
    for key in ("client:sid-a", "user:user-a", "nonce:appOne:n-1"):
        assert 0 < client.pttl(prefix + key) <= 30_000
    client.close()


def test_redis_decoding_client(redis_url: str) -> None:
    """A client with decode_responses=True gives the same str answers."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    reg = RedisRegistry(client, _unique_prefix())
    reg.register("sid-a", "user-a", "appOne")
    assert reg.resolve("user-a") == "sid-a"
    assert reg.user_of("sid-a") == "user-a"
    assert reg.app_of("sid-a") == "appOne"
    assert reg.rebind("user-b", "sid-a") == Rebind(True)
    assert reg.resolve("user-b") == "sid-a"
    reg.refresh(["sid-a"])
    reg.unregister("sid-a")
    assert reg.resolve("user-b") is None
    client.close()


def test_redis_prefixes_are_separate(redis_url: str) -> None:
    client = _redis_client(redis_url)
    one = RedisRegistry(client, _unique_prefix())
    two = RedisRegistry(client, _unique_prefix())
    one.register("sid-a", "user-a", "appOne")
    assert two.resolve("sid-a") is None
    assert two.resolve("user-a") is None
    assert one.claim_nonce("appOne", "n", 30.0) is True
    assert two.claim_nonce("appOne", "n", 30.0) is True
    client.close()


def test_redis_registry_is_shared_between_clients(redis_url: str) -> None:
    """Two workers (two clients, same prefix) see each other's sockets."""
    prefix = _unique_prefix()
    first, second = _redis_client(redis_url), _redis_client(redis_url)
    worker_one = RedisRegistry(first, prefix)
    worker_two = RedisRegistry(second, prefix)
    worker_one.register("sid-a", "user-u", "appOne")
    assert worker_two.resolve("user-u") == "sid-a"
    # The user reconnects to worker two; worker one learns of the old disconnect late.
    worker_two.register("sid-b", "user-fresh", "appOne")
    assert worker_two.rebind("user-u", "sid-b", take_over=True) == Rebind(True, "sid-a")
    worker_one.unregister("sid-a")
    assert worker_one.resolve("user-u") == "sid-b"
    first.close()
    second.close()


def test_both_engines_share_one_registry(redis_url: str) -> None:
    """An eventlet worker and an asyncio worker (same prefix) see each other's sockets, and a
    userId moves from one to the other."""
    prefix = _unique_prefix()
    first = _redis_client(redis_url)
    loop = asyncio.new_event_loop()
    second = redis.asyncio.Redis.from_url(redis_url)
    eventlet, on_asyncio = RedisRegistry(first, prefix), Awaited(
        AsyncRedisRegistry(second, prefix), loop)
    eventlet.register("sid-a", "user-u", "appOne")
    assert on_asyncio.resolve("user-u") == "sid-a" and on_asyncio.app_of("sid-a") == "appOne"
    on_asyncio.register("sid-b", "user-fresh", "appOne")
    assert on_asyncio.rebind("user-u", "sid-b", take_over=True) == Rebind(True, "sid-a")
    eventlet.unregister("sid-a")
    assert eventlet.resolve("user-u") == "sid-b"
    assert on_asyncio.claim_nonce("appOne", "n-1", 30.0) is True
    assert eventlet.claim_nonce("appOne", "n-1", 30.0) is False
    first.close()
    loop.run_until_complete(second.aclose())
    loop.close()


def test_redis_stale_user_mapping_is_not_online(redis_url: str) -> None:
    """A user key that outlives its socket's client key does not make the user online."""
    client = _redis_client(redis_url)
    prefix = _unique_prefix()
    reg = RedisRegistry(client, prefix, ttl=SHORT_TTL)
    reg.register("sid-a", "user-a", "appOne")
    client.pexpire(prefix + "user:user-a", 60_000)
    _wait_until_gone(client, prefix + "client:sid-a")
    assert client.get(prefix + "user:user-a") == b"sid-a"
    assert reg.resolve("sid-a") is None
    assert reg.resolve("user-a") is None
    client.close()


def test_redis_refresh_many(redis_url: str) -> None:
    """refresh() handles more sids than one pipeline chunk."""
    client = _redis_client(redis_url)
    prefix = _unique_prefix()
    reg = RedisRegistry(client, prefix, ttl=30.0)
    sids = [f"sid-{n}" for n in range(1203)]
    for n, sid in enumerate(sids):
        reg.register(sid, f"user-{n}", None)
    last_client = f"{prefix}client:{sids[-1]}"
    last_user = f"{prefix}user:user-{len(sids) - 1}"
    client.pexpire(last_client, 500)
    client.pexpire(last_user, 500)
    reg.refresh(sids)
    assert client.pttl(last_client) > 500
    assert client.pttl(last_user) > 500
    client.close()


@pytest.mark.parametrize("engine", ["eventlet", "asyncio"])
def test_dead_redis_raises_registry_error(engine: str) -> None:
    """Nobody listens on the port: every call fails at once with RegistryError, no retries."""
    port = free_port()
    options: dict[str, Any] = {"host": "127.0.0.1", "port": port, "password": "s3cret-pass",
                               "socket_connect_timeout": 1.0, "socket_timeout": 1.0}
    loop = asyncio.new_event_loop()
    client: Any
    if engine == "eventlet":
        client = redis.Redis(**options, retry=Retry(NoBackoff(), 0))
        reg: Any = RedisRegistry(client, "dead:")
    else:
        client = redis.asyncio.Redis(**options, retry=AsyncRetry(NoBackoff(), 0))
        reg = Awaited(AsyncRedisRegistry(client, "dead:"), loop)
    calls: list[Callable[[], object]] = [
        lambda: reg.register("sid-a", "user-a", "appOne"),
        lambda: reg.set_app("sid-a", "appOne"),
        lambda: reg.resolve("sid-a"),
        lambda: reg.user_of("sid-a"),
        lambda: reg.app_of("sid-a"),
        lambda: reg.rebind("user-a", "sid-a"),
        lambda: reg.unregister("sid-a"),
        lambda: reg.refresh(["sid-a"]),
        lambda: reg.claim_nonce("appOne", "n", 30.0),
    ]
    for call in calls:
        with pytest.raises(RegistryError) as info:
            call()
        message = str(info.value)
        assert "Redis error" in message
        for secret in ("s3cret-pass", str(port), "127.0.0.1", "dead:", "sid-a", "user-a"):
            assert secret not in message
        assert info.value.__suppress_context__
    if engine == "eventlet":
        client.close()
    else:
        loop.run_until_complete(client.aclose())
    loop.close()


def test_redis_ttl_must_be_positive(redis_url: str) -> None:
    client = _redis_client(redis_url)
    with pytest.raises(ValueError, match="ttl"):
        RedisRegistry(client, _unique_prefix(), ttl=0)
    with pytest.raises(ValueError, match="ttl"):
        MemoryRegistry(ttl=-5)
    client.close()
