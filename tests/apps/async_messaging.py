"""The asyncio twin of tests/apps/messaging.py: a socketio.AsyncServer on sioctl's asyncio
Redis manager (worker/messaging/async_manager.py), served by uvicorn, one process per node.

Until the asyncio worker engine runs it, the app installs the manager itself in the ASGI
lifespan, from the environment the test's launcher sets: SIOCTL_TEST_REDIS (the url),
SIOCTL_TEST_TRANSPORT (pubsub or streams), SIOCTL_WORKER_SLOT (which node this is). It reports
ready (uvicorn listens) only once its reader has subscribed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any

import socketio

from sioctl.worker.messaging.async_manager import AsyncSioctlRedisManager
from sioctl.worker.redis_setup import REDIS_MAX_CONNECTIONS
from tests.apps import messaging_common as common

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
# Strong references to the storm senders (the loop keeps only weak ones).
_senders: set[asyncio.Task[None]] = set()
# How often each kind of when_redis_back hook ran (a plain function, a coroutine function).
redis_back = {"plain": 0, "async": 0}


def _plain_hook() -> None:
    redis_back["plain"] += 1


async def _async_hook() -> None:
    await asyncio.sleep(0)
    redis_back["async"] += 1


def _logger() -> logging.Logger:
    """The log the tests read (stderr, like a sioctl worker's)."""
    logger = logging.getLogger("sioctl.worker")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s [node {common.slot()}] %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


async def startup() -> None:
    manager = AsyncSioctlRedisManager(
        os.environ["SIOCTL_TEST_REDIS"],
        logger=_logger(),
        # As sioctl's eventlet workers get it (worker/redis_setup.py).
        redis_options={"max_connections": REDIS_MAX_CONNECTIONS},
        transport=os.environ.get("SIOCTL_TEST_TRANSPORT", "pubsub"),
    )
    sio.manager = manager
    manager.set_server(sio)
    sio.manager_initialized = True
    manager.when_redis_back.extend([_plain_hook, _async_hook])
    manager.initialize()
    if not await manager.until_subscribed(5.0):
        raise RuntimeError("the Redis reader did not subscribe within 5s")


async def shutdown() -> None:
    if isinstance(sio.manager, AsyncSioctlRedisManager):
        await sio.manager.aclose()


app = socketio.ASGIApp(sio, on_startup=startup, on_shutdown=shutdown)


@sio.event
async def whoami(sid: str, data: Any = None) -> dict[str, Any]:
    """Which node serves this session, and that node's Redis manager identity."""
    return common.identity(sio.manager, sid)


@sio.event
async def echo(sid: str, data: Any = None) -> Any:
    return data


@sio.event
async def join(sid: str, room: str) -> bool:
    await sio.enter_room(sid, room)
    return True


@sio.event
async def send_to(sid: str, order: dict[str, Any]) -> int:
    """Emit 'msg' {tag, i} to order['to'] (a sid or a room), for i in order['first'] +
    range(order['n']); returns how many were emitted."""
    numbers = common.emitted(order)
    for i in numbers:
        await sio.emit("msg", common.message(order, i), to=order["to"])
    return len(numbers)


@sio.event
async def block(sid: str, seconds: float) -> None:
    """Hold the whole node (its event loop) for ``seconds``: a starved listener."""
    time.sleep(float(seconds))


@sio.event
async def storm(sid: str, order: dict[str, Any]) -> int:
    """Start order['senders'] tasks; sender k emits 'msg' {tag, i} to order['to'] for
    i = k * each ... k * each + each - 1, sleeping order['pause'] between emits. Returns at once
    with the number of messages that will be emitted."""
    senders, each, pause = common.storm_plan(order)

    async def sender(k: int) -> None:
        for i in range(k * each, (k + 1) * each):
            await sio.emit("msg", {"tag": order["tag"], "i": i}, to=order["to"])
            await sio.sleep(pause)

    for k in range(senders):
        task = sio.start_background_task(sender, k)
        _senders.add(task)
        task.add_done_callback(_senders.discard)
    return senders * each


@sio.event
async def manager_stats(sid: str, data: Any = None) -> dict[str, Any]:
    """The Redis manager's publisher and listener figures on this node, and how often its
    when_redis_back hooks ran."""
    return {**common.manager_stats(sio.manager), "redis_back": dict(redis_back)}


@sio.event
async def figures(sid: str, data: Any = None) -> dict[str, Any]:
    """What ``sioctl status`` and the metrics would show of this node's Redis traffic."""
    return dict(sio.manager.figures())
