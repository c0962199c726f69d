"""A socketio.Server whose clients ask it for bursts of room emits and broadcasts
(tests/e2e/test_broadcast_write.py); its asyncio twin is tests/apps/asyncfanout.py."""

from __future__ import annotations

from typing import Any

import socketio

from tests.apps.fanout_common import burst_plan, slot

sio = socketio.Server(cors_allowed_origins="*")


@sio.event
def whoami(sid: str, data: Any = None) -> dict[str, Any]:
    return {"sid": sid, "slot": slot()}


@sio.event
def join(sid: str, room: str) -> dict[str, Any]:
    sio.enter_room(sid, room)
    return {"sid": sid, "slot": slot()}


@sio.event
def burst(sid: str, order: dict[str, Any]) -> int:
    """Emit what ``order`` asks for (``fanout_common.burst_plan``); returns how many emits."""
    plan = burst_plan(sid, order)
    for data, options in plan:
        sio.emit("seq", data, **options)
    return len(plan)
