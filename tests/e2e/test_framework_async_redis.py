"""The framework's async shell on Redis, in process: ``io.generate_id`` with its ids claimed on
``redis.asyncio`` (two apps on one real redis-server stand for two workers), what the
manager's ``when_redis_back`` awaits, and Redis sessions shared with the eventlet side. A
Socket.IO client speaks Engine.IO long-polling to each app's ASGI app under ``asyncio.run``
(tests/support/asgi_polling.py).

The same behaviours run on eventlet, end to end, in test_framework.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

from sioctl.worker import protocol
from sioctl.worker.framework.aio import load_async_app_dir
from sioctl.worker.framework.session import SessionLoader, new_redis_session_cookie
from sioctl.worker.redis_clients import new_asyncio, new_blocking
from tests.support.asgi_polling import PollingClient, join_redis, write_app

FILES = {
    "config/config_default.py": """
        keys = ["test-key-new", "test-key-old"]
        io = {"namespace": {"/": {"connection_middleware": ["gate"]}}}
    """,
    "config/config_ids.py": """
        from urllib.parse import parse_qs

        def _id_from_query(environ):
            uid = parse_qs(environ.get("QUERY_STRING", "")).get("uid", [""])[0]
            return f"user-{uid}" if uid else None

        io = {"generate_id": _id_from_query}
    """,
    "config/config_redisess.py": """
        session = {"store": "redis", "max_age": 600}
    """,
    "app/router.py": """
        def setup(app):
            app.io.route("whoami", app.io.controller.info.whoami)
            app.io.route("remember", app.io.controller.info.remember)
    """,
    "app/io/middleware/gate.py": """
        def gate(app):
            async def middleware(ctx, next):
                if (ctx.auth or {}).get("refuse"):
                    raise PermissionError("refused by the app")
                await next()
            return middleware
    """,
    "app/io/controller/info.py": """
        async def whoami(ctx):
            return {"id": ctx.socket.id, "session": dict(ctx.session)}

        async def remember(ctx):
            ctx.session["remembered"] = ctx.args[0]
            await ctx.session.save()
            return "saved"
    """,
}


async def connected_sid(client: PollingClient, auth: dict[str, Any] | None = None) -> str:
    """Open ``client``; the sid of its CONNECT reply (AssertionError on a connect_error)."""
    await client.open(auth or {})
    reply = (await client.until("0"))[-1]
    assert reply.startswith("0{"), reply
    return str(json.loads(reply[1:])["sid"])


async def refusal(client: PollingClient, auth: dict[str, Any] | None = None) -> Any:
    """Open ``client`` expecting a refusal; the connect_error data."""
    await client.open(auth or {})
    [refused] = await client.until("4")
    return json.loads(refused[1:])


async def eventually(check: Any, what: str) -> None:
    """Let the loop run until ``await check()`` is true (bounded in count)."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


@pytest.fixture
def app_dir(tmp_path: Path) -> str:
    return str(write_app(tmp_path, FILES))


@pytest.fixture(params=["redis", "sentinel", "cluster"])
def any_redis_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """The session's redis:// URL, a redis+sentinel:// URL of the module's Sentinel group or
    a redis+cluster:// URL of the module's Redis Cluster (issue 20: claims and sessions find
    the master through the sentinels, and their keys' shards on the cluster)."""
    if request.param == "redis":
        return redis_url
    if request.param == "cluster":
        return str(request.getfixturevalue("module_redis_cluster").url)
    return str(request.getfixturevalue("module_sentinel").url)


@pytest.mark.parametrize("rules", [False, True], ids=["bare", "protocol-rules"])
def test_custom_ids_on_one_worker(app_dir: str, rules: bool) -> None:
    """With and without sioctl's protocol rules on the server (the asyncio worker installs
    them: their mixins override _handle_connect too)."""
    app = load_async_app_dir(app_dir, "ids")
    if rules:
        protocol.install(app.sio)

    async def scenario() -> None:
        first = PollingClient(app.asgi_app, "uid=7")
        assert await connected_sid(first) == "user-7"
        await first.send('21["whoami"]')
        [answer] = await first.until("31")
        assert json.loads(answer[2:])[0]["id"] == "user-7"
        assert await refusal(PollingClient(app.asgi_app, "uid=7")) == {
            "message": "socket id 'user-7' is already in use"}
        assert await refusal(PollingClient(app.asgi_app, "")) == {
            "message": "io.generate_id returned None, not a non-empty string"}
        await app.sio.shutdown()

    asyncio.run(scenario())


def test_custom_ids_are_claimed_in_redis_across_workers(app_dir: str, any_redis_url: str) -> None:
    redis_url = any_redis_url
    channel = f"ids-{uuid.uuid4().hex[:8]}"
    slots = [load_async_app_dir(app_dir, "ids", owner=f"slot-{i}") for i in range(2)]
    key = f"{channel}:ids:/:user-7"

    async def scenario() -> None:
        store = new_asyncio(redis_url)
        managers = [join_redis(app, redis_url, channel) for app in slots]
        first = PollingClient(slots[0].asgi_app, "uid=7")
        assert await connected_sid(first) == "user-7"
        assert await store.get(key) == b"slot-0"
        assert await refusal(PollingClient(slots[1].asgi_app, "uid=7")) == {
            "message": "socket id 'user-7' is already in use"}
        # A connection its middleware refused holds no claim.
        assert await refusal(PollingClient(slots[1].asgi_app, "uid=8"), {"refuse": 1}) == {
            "message": "refused by the app"}
        assert await store.exists(f"{channel}:ids:/:user-8") == 0

        # Redis lost the claim: the hook the manager awaits when Redis is back writes it again.
        assert slots[0].sio.claims.renew in managers[0].when_redis_back
        await store.delete(key)
        for hook in managers[0].when_redis_back:
            await hook()
        assert await store.get(key) == b"slot-0"
        # Another slot holds it now: the renewal leaves it to them.
        await store.set(key, "slot-9")
        await slots[0].sio.claims.renew()
        assert await store.get(key) == b"slot-9" and key not in slots[0].sio.claims.claimed
        await store.set(key, "slot-0")
        slots[0].sio.claims.claimed.add(key)

        # The holder leaves: its claim goes, and the id is free on the other worker.
        await first.send("1")
        await eventually(lambda: _gone(store, key), "the claim released")
        later = PollingClient(slots[1].asgi_app, "uid=7")
        assert await connected_sid(later) == "user-7"
        assert await store.get(key) == b"slot-1"
        for app in slots:
            await app.sio.shutdown()
        for manager in managers:
            if hasattr(manager, "aclose"):  # sioctl's (on a cluster): its tasks must stop
                await manager.aclose()
        await store.aclose()

    asyncio.run(scenario())


async def _gone(store: Any, key: str) -> bool:
    return bool(await store.exists(key) == 0)


def test_redis_sessions_load_and_save_across_engines(app_dir: str, any_redis_url: str) -> None:
    """A session made by the eventlet side's HTTP helper is ctx.session on asyncio; what the
    asyncio handler saves, the eventlet side's loader reads (the same cookie and keys)."""
    redis_url = any_redis_url
    app = load_async_app_dir(app_dir, "redisess", redis_url=redis_url)
    store = new_blocking(redis_url)
    header = new_redis_session_cookie({"user": "grace"}, app.config, store)
    cookie = header.split(";", 1)[0]

    async def scenario() -> None:
        client = PollingClient(app.asgi_app, headers=((b"cookie", cookie.encode()),))
        await connected_sid(client)
        await client.send('21["whoami"]')
        [answer] = await client.until("31")
        assert json.loads(answer[2:])[0]["session"] == {"user": "grace"}
        await client.send('22["remember","blue"]')
        assert await client.until("32") == ['32["saved"]']
        await app.sio.shutdown()
        await app.sessions._store.client.aclose()

    asyncio.run(scenario())
    loader = SessionLoader(app.config, store, logging.getLogger("sioctl.test"))
    assert loader.load({"HTTP_COOKIE": cookie}) == {"user": "grace", "remembered": "blue"}
    store.close()
