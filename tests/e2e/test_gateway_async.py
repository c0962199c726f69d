"""The signed-message gateway on the asyncio side, in process: tests/apps/gwapp loaded on a real
``socketio.AsyncServer`` (``load_async_app_dir`` with the worker's gateway plugin factory), its
registry in memory or in a real redis-server through ``redis.asyncio``; clients speak Engine.IO
long-polling to the app's ASGI app and ``POST /api/transportMessage`` goes through the same ASGI
app (tests/support/asgi_polling.py), under ``asyncio.run``.

The same behaviours run on eventlet, end to end, in test_gateway.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import redis.asyncio

from sioctl.worker import protocol
from sioctl.worker.framework.aio import AsyncApplication, load_async_app_dir
from sioctl.worker.gateway.async_gateway import AsyncGatewayPlugin
from sioctl.worker.gateway.async_registry import AsyncRedisRegistry
from sioctl.worker.gateway.memory_registry import MemoryRegistry
from sioctl.worker.gateway.mount import gateway_plugin
from sioctl.worker.gateway.wire import (
    DENY,
    EXCHANGE,
    REQUEST_ID,
    SAVE_ID,
    SEND_TO_OTHERS,
    now_ms,
    sign,
    signed_request,
)
from tests.support.asgi_polling import PollingClient, http_call, join_redis
from tests.support.paths import APPS_DIR

APP_DIR = APPS_DIR / "gwapp"
SIG_APP, SIG_KEY = "signatureApp", "signature-app-key"
HTTP_PATH = "/api/transportMessage"


class GatewayClient:
    """A polling client of the gateway: its ids from ``saveId``, its acks and messages."""

    def __init__(self, app: AsyncApplication) -> None:
        self.client = PollingClient(app.asgi_app)
        self.sid = self.user_id = ""
        self._acks = 0

    async def connect(self) -> None:
        await self.client.open({})
        saved = await self.message()
        assert saved["data"]["action"] == SAVE_ID
        self.sid, self.user_id = saved["meta"]["client"], saved["data"]["payload"]["userId"]

    async def message(self) -> dict[str, Any]:
        """The next ``responseMessage``."""
        packet = (await self.client.until('2["responseMessage"'))[-1]
        return dict(json.loads(packet[1:])[1])

    async def request(self, envelope: Any) -> Any:
        """Send a ``requestMessage``; its acknowledgement."""
        self._acks += 1
        await self.client.send(f"2{self._acks}" + json.dumps(["requestMessage", envelope]))
        *before, packet = await self.client.until(f"3{self._acks}")
        self.client.packets[:0] = before  # messages sent before the ack stay to be read
        return json.loads(packet[1 + len(str(self._acks)):])[0]


def http_body(target: str, message: Any, key: str = SIG_KEY) -> bytes:
    ts = now_ms()
    return json.dumps({"timestamp": ts, "app": SIG_APP, "target": target,
                       "sign": sign(SIG_APP, key, ts), "message": message}).encode()


@pytest.fixture(params=["memory", "redis"])
def app(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncApplication:
    monkeypatch.setenv("GWAPP_CENTRAL_KEY", "central-key")
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    channel = f"gw-{uuid.uuid4().hex[:8]}"
    return load_async_app_dir(str(APP_DIR), "prod", redis_url=redis_url, redis_channel=channel,
                              plugins=(gateway_plugin,))


def test_the_asyncio_gateway_is_async_over_the_right_registry(app: AsyncApplication) -> None:
    [plugin] = app.plugins
    assert isinstance(plugin, AsyncGatewayPlugin)
    registry = plugin.gateway.registry
    assert isinstance(registry, AsyncRedisRegistry if app.redis_url else MemoryRegistry)


@pytest.mark.parametrize("rules", [False, True], ids=["bare", "protocol-rules"])
def test_request_message_send_to_others_and_deny(app: AsyncApplication, rules: bool) -> None:
    """With and without sioctl's protocol rules on the server (the asyncio worker installs
    them)."""
    if rules:
        protocol.install(app.sio)

    async def scenario() -> None:
        alice, bob = GatewayClient(app), GatewayClient(app)
        await alice.connect()
        await bob.connect()
        ack = await alice.request(signed_request(REQUEST_ID, SIG_APP, SIG_KEY))
        assert ack["data"] == {"action": SAVE_ID, "payload": {"socketId": alice.sid,
                                                                "userId": alice.user_id}}
        assert (await alice.message())["data"]["action"] == SAVE_ID
        for target in (bob.user_id, bob.sid):
            ack = await alice.request(signed_request(
                SEND_TO_OTHERS, SIG_APP, SIG_KEY, {"hi": target}, target=target))
            assert ack == {"status": 200, "success": True, "target": target}
            got = await bob.message()
            assert got["data"] == {"action": EXCHANGE, "payload": {"hi": target}}
            assert got["meta"]["userId"] == alice.user_id
        ack = await alice.request(signed_request(SEND_TO_OTHERS, SIG_APP, SIG_KEY, 1,
                                                 target=str(uuid.uuid4())))
        assert ack["data"]["action"] == DENY and "not online" in ack["data"]["payload"]["reason"]
        # A bad signature: denied, then disconnected by the server.
        ack = await alice.request(signed_request(REQUEST_ID, SIG_APP, "wrong-key"))
        assert ack["data"] == {"action": DENY, "payload": {"reason": "bad signature"}}
        assert (await alice.client.until("1"))[-1] == "1"
        # A payload nested too deeply reaches the gateway (the protocol rules let a
        # requestMessage through), which denies it and disconnects.
        deep: Any = 1
        for _ in range(100):
            deep = [deep]
        ack = await bob.request(signed_request(REQUEST_ID, SIG_APP, SIG_KEY, deep))
        assert ack["data"]["payload"] == {"reason": "payload nested deeper than 64 levels",
                                          "fields": ["data.payload"]}
        assert (await bob.client.until("1"))[-1] == "1"
        await app.sio.shutdown()

    asyncio.run(scenario())


def test_transport_message_over_asgi(app: AsyncApplication) -> None:
    async def scenario() -> None:
        target = GatewayClient(app)
        await target.connect()
        asgi = app.asgi_app

        async def post(body: bytes, *headers: tuple[bytes, bytes]) -> tuple[int, Any, Any]:
            status, head, raw = await http_call(asgi, "POST", HTTP_PATH, body, headers)
            return status, head, json.loads(raw) if raw else None

        for address in (target.sid, target.user_id):
            status, _, body = await post(http_body(address, {"to": address}))
            assert (status, body) == (200, {"status": 200, "success": True,
                                            "message": "delivered"})
            got = await target.message()
            assert got["data"] == {"action": EXCHANGE, "payload": {"to": address}}
            assert got["meta"]["client"] == "http"
        status, head, body = await post(http_body(target.sid, "x", key="wrong"),
                                        (b"origin", b"https://h5.example.com"))
        assert (status, body["message"]) == (401, "bad signature")
        assert head[b"access-control-allow-origin"] == b"*"
        assert head[b"content-type"] == b"application/json"
        gone = str(uuid.uuid4())
        status, _, body = await post(http_body(gone, "x"))
        assert status == 404 and gone in body["message"]
        status, _, body = await post(b"not json {")
        assert (status, body["fields"]) == (422, ["body"])
        assert (await post(http_body(target.sid, "y" * 5000)))[0] == 413
        status, head, _ = await http_call(asgi, "GET", HTTP_PATH)
        assert status == 405 and b"POST" in head[b"allow"]
        status, head, raw = await http_call(asgi, "OPTIONS", HTTP_PATH,
                                            headers=((b"origin", b"https://h5.example.com"),))
        assert (status, raw) == (204, b"")
        assert b"POST" in head[b"access-control-allow-methods"]
        # Other paths reach the socket.io app behind the endpoint.
        assert (await http_call(asgi, "GET", "/nothing-here"))[0] == 404
        await app.sio.shutdown()

    asyncio.run(scenario())


def test_two_workers_share_the_registry_and_redis_back(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    """Two apps on one Redis stand for two workers: a message posted to one reaches a socket
    of the other; the registry entries Redis lost come back through ``redis_back``."""
    monkeypatch.setenv("GWAPP_CENTRAL_KEY", "central-key")
    channel = f"gw-{uuid.uuid4().hex[:8]}"
    workers = [load_async_app_dir(str(APP_DIR), "prod", redis_url=redis_url,
                                  redis_channel=channel, plugins=(gateway_plugin,))
               for _ in range(2)]

    async def scenario() -> None:
        store = redis.asyncio.Redis.from_url(redis_url)
        managers = [join_redis(app, redis_url, channel) for app in workers]
        target = GatewayClient(workers[1])
        await target.connect()
        client_key = f"{channel}:gw:client:{target.sid}"
        assert await store.hget(client_key, "user") == target.user_id.encode()
        status, _, raw = await http_call(workers[0].asgi_app, "POST", HTTP_PATH,
                                         http_body(target.user_id, "across"))
        assert status == 200, raw
        assert (await target.message())["data"]["payload"] == "across"

        [plugin] = workers[1].plugins
        assert plugin.redis_back in managers[1].when_redis_back
        await store.delete(client_key, f"{channel}:gw:user:{target.user_id}")
        for hook in managers[1].when_redis_back:
            await hook()
        assert await store.hget(client_key, "user") == target.user_id.encode()
        for app in workers:
            await app.sio.shutdown()
        await store.aclose()

    asyncio.run(scenario())
