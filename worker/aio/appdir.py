"""The asyncio worker's app directories: an egg-style app (the framework's asyncio shell,
:func:`~sioctl.worker.framework.aio.load_async_app_dir`) with the plugins its config may turn
on, served as ``app.asgi_app`` on ``app.sio``, a socketio.AsyncServer that then gets the
manager and protocol rules any AsyncServer app gets (:mod:`.app`)."""

from __future__ import annotations

import socket

from sioctl.cluster.settings import Settings
from sioctl.worker.boot import claims_owner
from sioctl.worker.framework.aio import AsyncApplication, load_async_app_dir
from sioctl.worker.gateway.mount import gateway_plugin

# The plugins an app directory's config may turn on (the gateway: socket_config), as on
# eventlet (worker/main.py); gateway_plugin gives the asyncio shell the AsyncGatewayPlugin.
PLUGINS = (gateway_plugin,)


def load(settings: Settings) -> AsyncApplication:
    """The app directory ``settings.app`` on the asyncio shell; raises BootError with one
    line (a config mistake names its file and key)."""
    return load_async_app_dir(settings.app, settings.env, settings.redis_url,
                              claims_owner(settings, socket.gethostname()),
                              settings.redis_channel, plugins=PLUGINS)
