"""The messaging test app (tests/apps/messaging.py) on python-socketio's stock RedisManager.

The app sets its own client manager, so sioctl's worker keeps it instead of installing
SioctlRedisManager: the benchmark's baseline. The Redis URL is the one the cluster was started
with (``--redis``), read from the worker's settings; the manager is built with python-socketio's
defaults, as an application would write it.
"""

from __future__ import annotations

import socketio

from sioctl.cluster.settings import Settings
from tests.apps.messaging import sio

__all__ = ["sio"]


def _redis_url() -> str:
    url = Settings.from_environ().redis_url
    if not url:
        raise RuntimeError("the stock-manager benchmark app needs --redis URL")
    return url


# The handlers of tests.apps.messaging use its module-level `sio`, so that very server gets
# the stock manager (each worker process imports one app only).
sio.manager = socketio.RedisManager(_redis_url())
sio.manager.set_server(sio)
sio.manager_initialized = False
