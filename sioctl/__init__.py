"""sioctl: a python-socketio application on every core, with sticky sessions and Redis.

What apps, HTTP views and outside programs import, from here::

    from sioctl import Controller                # base of class-based controllers
    from sioctl import session_cookie_header     # set ctx.session from the HTTP side
    from sioctl import new_redis_session_cookie  # the same, with session = {"store": "redis"}
    from sioctl import new_redis_session_cookie_async  # the same from async code (ASGI views)
    from sioctl import ExternalGateway           # gateway messages from outside the cluster
    from sioctl import QueryTimeout              # raised by sio.manager.fetch_sockets(...) & co
    from sioctl import gateway_wire              # the gateway's wire format (stdlib only)
    from sioctl import start_cluster             # `sioctl start` from Python (egg's startCluster)

Each name is imported on first use: ``import sioctl`` alone imports nothing else. The master
and the CLI import this package first and must never import eventlet (it hooks fork()), nor
pay for socket.io. None of the names above imports eventlet either, so a cron job or a web
backend may use them. Their longer paths (``sioctl.worker.framework.Controller``,
``sioctl.worker.gateway.external.ExternalGateway``, …) keep working.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_NAMES = {
    "Controller": "sioctl.worker.framework.controller",
    "session_cookie_header": "sioctl.worker.framework.session",
    "new_redis_session_cookie": "sioctl.worker.framework.session",
    "new_redis_session_cookie_async": "sioctl.worker.framework.session_async",
    "ExternalGateway": "sioctl.worker.gateway.external",
    "QueryTimeout": "sioctl.worker.messaging.queries",
    "start_cluster": "sioctl.cli.programmatic",
}
# Public name -> a module offered as a whole.
_MODULES = {
    "gateway_wire": "sioctl.worker.gateway.wire",
}

# Written out (not built from the tables) so that linters and type checkers read it.
__all__ = [
    "Controller",
    "ExternalGateway",
    "QueryTimeout",
    "gateway_wire",
    "new_redis_session_cookie",
    "new_redis_session_cookie_async",
    "session_cookie_header",
    "start_cluster",
]

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports them
    from sioctl.cli.programmatic import start_cluster
    from sioctl.worker.framework.controller import Controller
    from sioctl.worker.framework.session import new_redis_session_cookie, session_cookie_header
    from sioctl.worker.framework.session_async import new_redis_session_cookie_async
    from sioctl.worker.gateway import wire as gateway_wire
    from sioctl.worker.gateway.external import ExternalGateway
    from sioctl.worker.messaging.queries import QueryTimeout


def __getattr__(name: str) -> Any:
    """Import a public name the first time it is asked for (PEP 562)."""
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
