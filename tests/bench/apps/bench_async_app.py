"""tests/bench/apps/bench_app.py for the asyncio engine: the same events on a socketio.AsyncServer,
served as ``app`` (a socketio.ASGIApp) by sioctl's asyncio workers and by a stock uvicorn."""

from __future__ import annotations

import os
from typing import Any

import socketio

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
SLOT = int(os.environ.get("SIOCTL_WORKER_SLOT", os.environ.get("BENCH_SLOT", "0")))


@sio.event
async def whoami(sid: str, data: Any = None) -> dict[str, Any]:
    return {"slot": SLOT, "pid": os.getpid(), "sid": sid}


@sio.event
async def echo(sid: str, data: Any = None) -> Any:
    return data


@sio.event
async def send_to(sid: str, order: dict[str, Any]) -> bool:
    await sio.emit("msg", order.get("data"), to=order["to"])
    return True


@sio.event
async def broadcast(sid: str, data: Any = None) -> bool:
    await sio.emit("news", data)
    return True


app = socketio.ASGIApp(sio)
