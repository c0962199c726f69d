"""tests/apps/engine.py on the asyncio engine: Engine.IO apps without (or beside) Socket.IO on
python-engineio's AsyncServer, so the same tests run on both engines.

- ``eio`` / ``app``: a bare ``engineio.AsyncServer`` (served through ``engineio.ASGIApp``). It
  echoes every message; the message ``disconnect-everyone`` makes it call ``eio.disconnect()``,
  which replaces python-engineio's sessions dict.
- ``mixed``: an ASGI app serving a socketio.AsyncServer at /socket.io/ and a bare
  engineio.AsyncServer beside it at /raw/ (echoing too, with a 0.3 s ping interval).
- ``sio``: a socketio.AsyncServer whose event ``disconnect_everyone`` calls
  ``sio.eio.disconnect()``.
"""

from __future__ import annotations

from typing import Any

import engineio
import socketio

eio = engineio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")


@eio.on("message")
async def echo_message(sid: str, data: Any) -> None:
    if data == "disconnect-everyone":
        # Not in this handler's own task: disconnect() waits for each session to read its
        # CLOSE packet, this one's included.
        eio.start_background_task(eio.disconnect)
        return
    await eio.send(sid, data)


app = engineio.ASGIApp(eio)

raw = engineio.AsyncServer(async_mode="asgi", cors_allowed_origins="*", ping_interval=0.3)


@raw.on("message")
async def raw_echo(sid: str, data: Any) -> None:
    await raw.send(sid, data)


beside = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")


@beside.event
async def echo(sid: str, data: Any = None) -> Any:
    return data


mixed = engineio.ASGIApp(raw, socketio.ASGIApp(beside), engineio_path="raw")

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")


@sio.event
async def disconnect_everyone(sid: str) -> bool:
    sio.start_background_task(sio.eio.disconnect)
    return True
