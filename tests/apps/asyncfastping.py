"""tests/apps/fastping.py on the asyncio engine: the same sub-second ping intervals on
socketio.AsyncServer, so the ping-interval and heartbeat tests run on both engines.

- ``sio``: 0.3 s interval, 1 s timeout.
- ``tight``: 0.5 s interval, 0.4 s timeout.
"""

from __future__ import annotations

import os
from typing import Any

import socketio

sio = socketio.AsyncServer(async_mode="asgi", ping_interval=0.3, ping_timeout=1,
                           cors_allowed_origins="*")
tight = socketio.AsyncServer(async_mode="asgi", ping_interval=0.5, ping_timeout=0.4,
                             cors_allowed_origins="*")


async def whoami(sid: str, data: Any = None) -> dict[str, Any]:
    return {"slot": int(os.environ.get("SIOCTL_WORKER_SLOT", "-1")), "pid": os.getpid()}


async def echo(sid: str, data: Any = None) -> Any:
    return data


async def shout(sid: str, data: Any = None) -> bool:
    """Emit ``shouted`` to every client (an emit reaching idle websockets)."""
    await sio.emit("shouted", data)
    return True


sio.on("whoami", whoami)
sio.on("echo", echo)
sio.on("shout", shout)
tight.on("whoami", whoami)
tight.on("echo", echo)
