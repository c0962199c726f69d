"""tests/apps/ownjson.py on the asyncio engine: a socketio.AsyncServer given its own JSON
module (``json=``)."""

from __future__ import annotations

from typing import Any

import socketio

from tests.apps.ownjson_common import OwnJson, echo

sio = socketio.AsyncServer(async_mode="asgi", json=OwnJson, cors_allowed_origins="*")
app = socketio.ASGIApp(sio)


@sio.on("echo")
async def on_echo(sid: str, data: Any = None) -> Any:
    return echo(data)
