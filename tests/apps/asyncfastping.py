"""tests/apps/fastping.py on the asyncio engine: the same sub-second ping intervals on
socketio.AsyncServer, so the ping-interval and heartbeat tests run on both engines.

- ``sio``: 0.3 s interval, 1 s timeout.
- ``tight``: 0.5 s interval, 0.4 s timeout.
- ``app``: ``sio`` with the app's own ``GET /download`` (as tests/apps/fastping.py's).
"""

from __future__ import annotations

import os
from typing import Any

import socketio

# As tests/apps/fastping.py's (not imported: it builds an eventlet-mode server).
DOWNLOAD_SIZE = 64 * 64_000
DOWNLOAD_CHUNK = 64_000

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


async def download(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``GET /download``: DOWNLOAD_SIZE bytes of ``d``, streamed; 404 for any other path."""
    if scope.get("path") != "/download":
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(DOWNLOAD_SIZE).encode())]})
    for _ in range(DOWNLOAD_SIZE // DOWNLOAD_CHUNK):
        await send({"type": "http.response.body", "body": b"d" * DOWNLOAD_CHUNK,
                    "more_body": True})
    await send({"type": "http.response.body", "body": b""})


app = socketio.ASGIApp(sio, other_asgi_app=download)
