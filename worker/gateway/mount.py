"""The gateway as a framework plugin: turned on by ``socket_config``, it serves the default
namespace's ``requestMessage`` and ``POST /api/transportMessage``.

The framework knows nothing of the gateway; ``gateway_plugin`` is one of the plugin factories the
worker hands to ``load_app_dir`` (see ``sioctl.worker.framework.plugins``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sioctl.worker.errors import BootError
from sioctl.worker.framework.plugins import Handler, Plugin, WSGIApp
from sioctl.worker.redis_clients import blocking_client
from sioctl.worker.redis_cluster import registry_prefix

from . import wire
from .config import parse_gateway_config
from .gateway import Gateway
from .http import TransportMessageApp
from .memory_registry import MemoryRegistry
from .plugin import NAMESPACE
from .registry import RedisRegistry, Registry
from .registry_presence import WorkerId

if TYPE_CHECKING:
    from sioctl.worker.framework.context import Context
    from sioctl.worker.framework.core import AppCore


class GatewayPlugin(Plugin):
    """The framework's hooks, each handed to the worker's :class:`Gateway`."""

    name = "gateway"
    namespace = NAMESPACE

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def refuse(self, sid: str, auth: Any) -> str | None:
        return self.gateway.check_handshake(auth, sid)

    def connected(self, ctx: Context) -> None:
        self.gateway.on_connect(ctx.socket.id, ctx.socket, ctx.auth, vouched_user_id=ctx.user_id)

    def disconnected(self, sid: str) -> None:
        self.gateway.on_disconnect(sid)

    def routes(self) -> dict[str, Handler]:
        gateway = self.gateway
        return {wire.REQUEST_MESSAGE: lambda ctx: gateway.handle(ctx.socket.id, ctx.args)}

    def wrap_wsgi(self, app: WSGIApp) -> WSGIApp:
        return TransportMessageApp(self.gateway, app)

    def redis_back(self) -> None:
        # The embedded Redis restarted without persistence, say: put our sockets back in the
        # registry at once rather than at the next periodic refresh.
        self.gateway.refresh()


def gateway_plugin(app: AppCore) -> Plugin | None:
    """The signed-message gateway, when ``socket_config`` names at least one app; its registry
    is shared through the cluster's Redis (in memory without one). On the asyncio shell (an app
    that awaits) it is ``async_gateway.AsyncGatewayPlugin``."""
    config = app.config
    if not config.socket_config:
        return None
    try:
        gateway_config = parse_gateway_config(config.socket_config, config.gateway or None)
    except ValueError as exc:
        raise BootError(f"{config.where(str(exc).split(':', 1)[0])}: "
                        f"{str(exc).split(':', 1)[-1].strip()}") from None
    if app.awaits:
        from .async_gateway import async_gateway_plugin

        return async_gateway_plugin(app, gateway_config)
    registry: Registry
    if app.redis_url:
        registry = RedisRegistry(blocking_client(app.redis_url, app.redis_channel),
                                 prefix=registry_prefix(app.redis_url, app.redis_channel),
                                 worker=WorkerId.here())
    else:
        registry = MemoryRegistry()
    return GatewayPlugin(Gateway(app.sio, gateway_config, registry))
