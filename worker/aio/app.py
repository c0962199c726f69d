"""The asyncio worker's app: load it, check that it is an asyncio one, find its servers, put
sioctl's protocol rules on them, and join its socketio.AsyncServer to the other workers through
Redis with sioctl's asyncio manager (worker/messaging/async_manager.py: the same channel,
messages and guarantees as the eventlet workers' manager, so both engines' workers can share a
Redis).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import engineio
import socketio

from sioctl.cluster.redis_urls import check_url
from sioctl.cluster.settings import ASYNCIO, Settings, mask_url
from sioctl.worker import app_loader, boot, protocol, redis_setup
from sioctl.worker.aio import appdir
from sioctl.worker.errors import BootError
from sioctl.worker.messaging.async_manager import AsyncSioctlRedisManager
from sioctl.worker.messaging.fanout import FanoutAsyncManager
from sioctl.worker.redis_clients import new_asyncio

# As on eventlet (worker/redis_setup.py): the boot PING's timeout, how long a new worker waits
# for its Redis listener to subscribe, and no pool limit (redis-py 8's 100 fails busy workers).
PING_TIMEOUT = redis_setup.PING_TIMEOUT
SUBSCRIBE_TIMEOUT = redis_setup.SUBSCRIBE_TIMEOUT
REDIS_MAX_CONNECTIONS = redis_setup.REDIS_MAX_CONNECTIONS


@dataclass
class LoadedAsgiApp:
    """What the asyncio worker serves: an ASGI callable, the socketio.AsyncServer inside it
    (None for an Engine.IO-only app), every engineio.AsyncServer (the socketio server's first)."""

    asgi_app: Callable[..., Any]
    server: socketio.AsyncServer | None
    engines: list[engineio.AsyncServer] = field(default_factory=list)


def load(settings: Settings) -> LoadedAsgiApp:
    """Import the app and find what to serve; raises BootError (one line) when it cannot be
    served on asyncio, naming the engine it needs."""
    boot.prepare_environment(settings)
    spec = settings.app
    if os.path.isabs(spec) and os.path.isdir(spec):
        app = appdir.load(settings)
        boot.quiet_library_handlers()
        return LoadedAsgiApp(app.asgi_app, app.sio, [app.sio.eio])
    obj = app_loader.load_object(spec)
    needs, what = app_loader.engine_of(obj)
    if needs is None:
        raise BootError(f"cannot load app {spec!r}: {what}")
    if needs != ASYNCIO:
        raise app_loader.mismatch(spec, what, needs, ASYNCIO)
    server, engines = app_loader.find_async_servers(obj)
    if server is not None:
        engines = [server.eio, *(e for e in engines if e is not server.eio)]
    for eio in engines:
        if eio.async_mode != "asgi":
            raise BootError(f"cannot load app {spec!r}: its server uses async_mode "
                            f"{eio.async_mode!r}; the asyncio engine serves async_mode='asgi'")
    if server is not None and (obj is server or not callable(obj)):
        asgi_app: Callable[..., Any] = socketio.ASGIApp(server)
    elif server is None and (obj is engines[0] or not callable(obj)):
        asgi_app = engineio.ASGIApp(engines[0])
    else:
        asgi_app = obj
    boot.quiet_library_handlers()
    return LoadedAsgiApp(asgi_app, server, engines)


async def check_redis(url: str, timeout: float = PING_TIMEOUT,
                      channel: str = "socketio") -> None:
    """Ping the Redis at ``url``; raises BootError naming the masked url and the reason (the
    password scrubbed from it, as redis_setup.check_redis does on eventlet)."""
    client = new_asyncio(url, channel, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        await asyncio.wait_for(client.ping(), timeout)
    except Exception as exc:
        raise BootError(f"cannot reach Redis at {mask_url(url)}: "
                        f"{redis_setup.failure(exc, url)}") from exc
    finally:
        await client.aclose()


async def join_workers(
    server: socketio.AsyncServer | None, settings: Settings, logger: logging.Logger
) -> str:
    """Give ``server`` sioctl's asyncio Redis manager (AsyncSioctlRedisManager) on the
    settings' Redis, transport and stream length, as redis_setup.install_manager does on
    eventlet (unless the app chose its own manager), start it, and wait until it has
    subscribed, so no message published after the worker is ready is missed. Raises
    BootError (Redis unreachable, the manager failing to start or to subscribe); returns a
    description for the log."""
    if server is None:
        return "Engine.IO only, no manager"
    description = "in-memory manager"
    if type(server.manager) is not socketio.AsyncManager:
        description = f"the app's own {type(server.manager).__name__}"
    elif settings.redis_url:
        reason = check_url(settings.redis_url)
        if reason is not None:
            raise BootError(f"{mask_url(settings.redis_url)} {reason}")
        await check_redis(settings.redis_url, channel=settings.redis_channel)
        manager = AsyncSioctlRedisManager(
            settings.redis_url, channel=settings.redis_channel, logger=logger,
            redis_options={"max_connections": REDIS_MAX_CONNECTIONS},
            transport=settings.redis_transport, stream_maxlen=settings.redis_stream_maxlen)
        if settings.connection_state_recovery > 0:
            manager.enable_recovery(settings.connection_state_recovery)
        server.manager = manager
        manager.set_server(server)
        server.manager_initialized = False
        description = redis_setup.describe_redis(
            settings.redis_url, settings.redis_channel, settings.redis_transport,
            settings.connection_state_recovery)
    if type(server.manager) is socketio.AsyncManager:
        # The in-memory manager, with the local delivery of sioctl's (no task per recipient).
        server.manager.__class__ = FanoutAsyncManager
    if settings.connection_state_recovery > 0 and \
            not isinstance(server.manager, AsyncSioctlRedisManager):
        logger.warning("connection state recovery is off: it needs sioctl's Redis manager "
                       "(--redis, or more than one worker), not the %s", description)
    if not server.manager_initialized:
        server.manager_initialized = True
        try:
            server.manager.initialize()
        except Exception as exc:
            raise BootError(f"cannot start the client manager ({description}): {exc}") from exc
    if (isinstance(server.manager, AsyncSioctlRedisManager)
            and not await server.manager.until_subscribed(SUBSCRIBE_TIMEOUT)):
        raise BootError(f"the {description} listener did not subscribe within "
                        f"{SUBSCRIBE_TIMEOUT:g}s")
    return description


def messaging_figures(server: socketio.AsyncServer | None) -> dict[str, Any] | None:
    """The manager's figures for the heartbeat (``sioctl status``, the metrics), as the
    eventlet worker sends them; None when the manager has none."""
    figures = getattr(getattr(server, "manager", None), "figures", None)
    return figures() if callable(figures) else None


async def leave_workers(server: socketio.AsyncServer | None, seconds: float,
                        logger: logging.Logger) -> None:
    """At the end of a drain: give sioctl's manager up to ``seconds`` to send what is still
    queued (what the app's shutdown emitted), then close its tasks and connections."""
    manager = getattr(server, "manager", None)
    if not isinstance(manager, AsyncSioctlRedisManager):
        return
    queue = getattr(manager.publisher, "queue", ())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, seconds)
    while queue and loop.time() < deadline:
        await asyncio.sleep(0.01)
    if queue:
        logger.warning("exiting with %d Redis commands not sent", len(queue))
    await manager.aclose()


def install_rules(loaded: LoadedAsgiApp, settings: Settings) -> None:
    """Put sioctl's Engine.IO/Socket.IO rules (worker/protocol's async shells) on every server
    of ``loaded``, with the settings the eventlet worker uses (--connect-timeout,
    --allow-eio3; the exact ping interval always). worker/aio/fixes.py must be installed
    first: the shells keep the ASGI driver's translate_request they find."""
    if loaded.server is not None:
        protocol.install(loaded.server, settings.connect_timeout, settings.allow_eio3)
    for eio in loaded.engines:
        protocol.install_engine(eio, settings.allow_eio3)  # again on the server's: a no-op


def open_sessions(loaded: LoadedAsgiApp) -> int:
    """engine.io sessions not yet closed."""
    return sum(1 for eio in loaded.engines for s in list(eio.sockets.values()) if not s.closed)


async def close_sessions(loaded: LoadedAsgiApp, logger: logging.Logger) -> int:
    """Close the transport of every engine.io session at once, without a CLOSE packet, so
    python and JS clients reconnect (as worker/drain.py does on eventlet); returns how many."""
    sessions = [(eio, s) for eio in loaded.engines for s in list(eio.sockets.values())]

    async def close(eio: engineio.AsyncServer, session: Any) -> None:
        try:
            await session.close(wait=False, abort=True, reason=eio.reason.TRANSPORT_CLOSE)
        except Exception:
            logger.debug("closing session %s failed", session.sid, exc_info=True)
        eio.sockets.pop(session.sid, None)

    await asyncio.gather(*(close(eio, s) for eio, s in sessions))
    return len(sessions)
