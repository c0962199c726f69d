"""The asyncio twin of tests/apps/messaging.py: a socketio.AsyncServer served by sioctl's
asyncio workers, which give it sioctl's asyncio Redis manager
(worker/messaging/async_manager.py) as the eventlet workers give the sync app theirs.

Its ASGI lifespan startup registers two ``when_redis_back`` hooks on that manager (a plain
function and a coroutine function), counted in ``manager_stats``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import socketio

from sioctl.worker.messaging.async_manager import AsyncSioctlRedisManager
from tests.apps import messaging_common as common

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
# Strong references to the storm senders (the loop keeps only weak ones).
_senders: set[asyncio.Task[None]] = set()
# How often each kind of when_redis_back hook ran (a plain function, a coroutine function).
redis_back = {"plain": 0, "async": 0}
# While "held" is set, the plain hook blocks (as a sync hook written for eventlet may) until
# "released" is set; "entered" says it has started.
_hold = {"held": threading.Event(), "entered": threading.Event(),
         "released": threading.Event()}


def _plain_hook() -> None:
    if _hold["held"].is_set():
        _hold["entered"].set()
        _hold["released"].wait(60)  # bounded: a hook run on the loop must not hang the test
    redis_back["plain"] += 1


async def _async_hook() -> None:
    await asyncio.sleep(0)
    redis_back["async"] += 1


async def startup() -> None:
    # The worker installs its manager before the lifespan startup runs.
    if isinstance(sio.manager, AsyncSioctlRedisManager):
        sio.manager.when_redis_back.extend([_plain_hook, _async_hook])


app = socketio.ASGIApp(sio, on_startup=startup)


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
async def send_mixed(sid: str, order: dict[str, Any]) -> int:
    """As the eventlet app's ``send_mixed``."""
    for i in range(int(order["n"])):
        await sio.emit("msg", common.message(order, i), to=common.mixed_target(order, i))
    return int(order["n"])


@sio.event
async def send_varied(sid: str, order: dict[str, Any]) -> int:
    """As the eventlet app's ``send_varied``."""
    for i in range(int(order["n"])):
        arguments = common.varied_arguments(order, i)
        await sio.emit("msg", arguments if len(arguments) > 1 else arguments[0],
                       to=order["to"])
    return int(order["n"])


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
async def hold_redis_back(sid: str, release: bool = False) -> dict[str, bool]:
    """Make the plain when_redis_back hook block until this is called with ``release`` true;
    says whether the hook has entered its wait."""
    (_hold["released"] if release else _hold["held"]).set()
    return {"entered": _hold["entered"].is_set()}


@sio.event
async def figures(sid: str, data: Any = None) -> dict[str, Any]:
    """What ``sioctl status`` and the metrics would show of this node's Redis traffic."""
    return dict(sio.manager.figures())


@sio.event
async def query(sid: str, order: dict[str, Any]) -> dict[str, Any]:
    """Run a global query on this worker's manager: fetch, join, leave or disconnect."""
    manager = sio.manager
    kind, room = order["kind"], order.get("room")
    timeout = float(order.get("timeout", 2.0))
    try:
        if kind == "fetch":
            return {"sockets": await manager.fetch_sockets(room, timeout=timeout)}
        if kind == "rooms_of":
            return {"rooms": await manager.rooms_of(order["sid"], timeout=timeout)}
        if kind == "join":
            return {"count": await manager.sockets_join(order["target"], room,
                                                        timeout=timeout)}
        if kind == "leave":
            return {"count": await manager.sockets_leave(order["target"], room,
                                                         timeout=timeout)}
        return {"count": await manager.disconnect_sockets(room, timeout=timeout)}
    except Exception as exc:  # QueryTimeout: say so, with what the others answered
        return {"error": type(exc).__name__, "message": str(exc),
                "answered": len(getattr(exc, "answers", []))}
