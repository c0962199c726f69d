"""The gateway on the asyncio engine: the flows of :class:`~.plugin.GatewayCore` awaited on a
``socketio.AsyncServer``, with the registry in Redis through ``redis.asyncio`` (shared with
eventlet workers: the same keys) or in memory for one worker without Redis; and the framework
plugin whose hooks and ``requestMessage`` route are ``async def``, with ``POST
/api/transportMessage`` as an ASGI endpoint (:mod:`.asgi`).

Nothing is decided here: :mod:`.rules`, :mod:`.wire` and :mod:`.config` decide, the flows order
the I/O; this module only awaits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sioctl.worker.flow import arun
from sioctl.worker.framework.plugins import ASGIApp, Handler, Plugin
from sioctl.worker.redis_clients import asyncio_client
from sioctl.worker.redis_cluster import registry_prefix

from . import wire
from .asgi import TransportMessageASGI
from .async_registry import AsyncRedisRegistry
from .config import GatewayConfig
from .memory_registry import MemoryRegistry
from .plugin import DISCONNECT_DELAY, NAMESPACE, SWEEP_EVERY, GatewayCore
from .registry_presence import WorkerId

if TYPE_CHECKING:
    from sioctl.worker.framework.context import Context
    from sioctl.worker.framework.core import AppCore


class AsyncGateway(GatewayCore):
    """The gateway on asyncio: each flow awaited (see ``gateway.Gateway`` for what each call
    does)."""

    async def check_handshake(self, auth: Any, sid: str | None = None) -> str | None:
        return await arun(self.handshake(auth, sid))

    async def on_connect(
        self, sid: str, socket: Any, auth: Any, vouched_user_id: str | None = None
    ) -> None:
        await arun(self.connect(sid, socket, auth, vouched_user_id))

    async def on_disconnect(self, sid: str) -> None:
        await arun(self.disconnect(sid))

    async def refresh(self) -> None:
        await arun(self.refreshing())

    async def handle(self, sid: str, args: list[Any]) -> Any:
        return await arun(self.request(sid, args))

    async def check_replay(self, app: str, nonce: Any, sign: Any, owner: str | None) -> None:
        await arun(self.replay_check(app, nonce, sign, owner))

    async def deliver(self, target: str, message: dict[str, Any]) -> str | None:
        return await arun(self.delivery(target, message))

    async def _refresh_forever(self) -> None:
        while True:
            await self.server.sleep(SWEEP_EVERY)
            await arun(self.ticking())

    async def _disconnect_soon(self, sid: str) -> None:
        await self.server.sleep(DISCONNECT_DELAY)
        await self.server.disconnect(sid, namespace=NAMESPACE)


class AsyncGatewayPlugin(Plugin):
    """The framework's hooks on asyncio, each awaiting the worker's :class:`AsyncGateway`."""

    name = "gateway"
    namespace = NAMESPACE

    def __init__(self, gateway: AsyncGateway) -> None:
        self.gateway = gateway

    async def refuse(self, sid: str, auth: Any) -> str | None:
        return await self.gateway.check_handshake(auth, sid)

    async def connected(self, ctx: Context) -> None:
        await self.gateway.on_connect(ctx.socket.id, ctx.socket, ctx.auth,
                                      vouched_user_id=ctx.user_id)

    async def disconnected(self, sid: str) -> None:
        await self.gateway.on_disconnect(sid)

    def routes(self) -> dict[str, Handler]:
        gateway = self.gateway

        async def request_message(ctx: Context) -> Any:
            return await gateway.handle(ctx.socket.id, ctx.args)

        return {wire.REQUEST_MESSAGE: request_message}

    def wrap_asgi(self, app: ASGIApp) -> ASGIApp:
        return TransportMessageASGI(self.gateway, app)

    async def redis_back(self) -> None:
        # Put our sockets back in the registry at once rather than at the next refresh.
        await self.gateway.refresh()


def async_gateway_plugin(app: AppCore, config: GatewayConfig) -> AsyncGatewayPlugin:
    """The gateway of an app on the asyncio shell; its registry is shared through the
    cluster's Redis (in memory without one)."""
    registry: Any
    if app.redis_url:
        registry = AsyncRedisRegistry(asyncio_client(app.redis_url, app.redis_channel),
                                      prefix=registry_prefix(app.redis_url, app.redis_channel),
                                      worker=WorkerId.here())
    else:
        registry = MemoryRegistry()
    return AsyncGatewayPlugin(AsyncGateway(app.sio, config, registry))
