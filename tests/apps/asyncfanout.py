"""tests/apps/fanout.py on the asyncio engine (socketio.AsyncServer, the same events)."""

from __future__ import annotations

from typing import Any

import socketio

from tests.apps.fanout_common import burst_plan, slot

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
app = socketio.ASGIApp(sio)


@sio.event
async def whoami(sid: str, data: Any = None) -> dict[str, Any]:
    return {"sid": sid, "slot": slot()}


@sio.event
async def join(sid: str, room: str) -> dict[str, Any]:
    await sio.enter_room(sid, room)
    return {"sid": sid, "slot": slot()}


@sio.event
async def burst(sid: str, order: dict[str, Any]) -> int:
    """Emit what ``order`` asks for (``fanout_common.burst_plan``); returns how many emits."""
    plan = burst_plan(sid, order)
    for data, options in plan:
        await sio.emit("seq", data, **options)
    return len(plan)
