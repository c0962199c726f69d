"""Engine.IO apps without (or beside) Socket.IO, as a user would write them.

- ``eio``: a bare ``engineio.Server`` (served through ``engineio.WSGIApp``). It echoes every
  message; the message ``disconnect-everyone`` makes it call ``eio.disconnect()``, which
  replaces python-engineio's sessions dict.
- ``mixed``: a WSGI app serving a socketio.Server at /socket.io/ and a bare engineio.Server
  beside it at /raw/ (echoing too, with a 0.3 s ping interval).
- ``sio``: a socketio.Server whose event ``disconnect_everyone`` calls ``sio.eio.disconnect()``.
"""

from __future__ import annotations

from typing import Any

import engineio
import socketio

eio = engineio.Server(cors_allowed_origins="*")


@eio.on("message")
def echo_message(sid: str, data: Any) -> None:
    if data == "disconnect-everyone":
        # Not in this handler's own task: disconnect() waits for each session to read its
        # CLOSE packet, this one's included.
        eio.start_background_task(eio.disconnect)
        return
    eio.send(sid, data)


app = engineio.WSGIApp(eio)

raw = engineio.Server(cors_allowed_origins="*", ping_interval=0.3)


@raw.on("message")
def raw_echo(sid: str, data: Any) -> None:
    raw.send(sid, data)


beside = socketio.Server(cors_allowed_origins="*")


@beside.event
def echo(sid: str, data: Any = None) -> Any:
    return data


mixed = engineio.WSGIApp(raw, socketio.WSGIApp(beside), engineio_path="raw")

sio = socketio.Server(cors_allowed_origins="*")


@sio.event
def disconnect_everyone(sid: str) -> bool:
    sio.start_background_task(sio.eio.disconnect)
    return True
