"""Apps with sub-second ping intervals, for the ping-interval tests.

python-engineio advertises ``int(ping_interval + grace) * 1000`` ms in its OPEN packet, so a
fractional interval is truncated; sioctl's workers advertise what is configured.

- ``sio``: 0.3 s interval, 1 s timeout; stock engine.io advertises 0 ms instead of 300 ms.
- ``tight``: 0.5 s interval, 0.4 s timeout; stock engine.io advertises 0 ms, so a JS client
  expects a ping within 0.4 s, gets one every 0.5 s, and drops with "ping timeout".
- ``app``: ``sio`` with a route of the app's own, ``GET /download`` (DOWNLOAD_SIZE bytes in
  chunks of DOWNLOAD_CHUNK: a response that is not Engine.IO's).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import socketio

sio = socketio.Server(ping_interval=0.3, ping_timeout=1, cors_allowed_origins="*")
tight = socketio.Server(ping_interval=0.5, ping_timeout=0.4, cors_allowed_origins="*")


def whoami(sid: str, data: Any = None) -> dict[str, Any]:
    return {"slot": int(os.environ.get("SIOCTL_WORKER_SLOT", "-1")), "pid": os.getpid()}


def echo(sid: str, data: Any = None) -> Any:
    return data


def shout(sid: str, data: Any = None) -> bool:
    """Emit ``shouted`` to every client (an emit reaching idle websockets)."""
    sio.emit("shouted", data)
    return True


sio.on("whoami", whoami)
sio.on("echo", echo)
sio.on("shout", shout)
tight.on("whoami", whoami)
tight.on("echo", echo)

DOWNLOAD_SIZE = 64 * 64_000
DOWNLOAD_CHUNK = 64_000


def download(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    """``GET /download``: DOWNLOAD_SIZE bytes of ``d``, streamed; 404 for any other path."""
    if environ.get("PATH_INFO") != "/download":
        start_response("404 Not Found", [("Content-Length", "0")])
        return iter(())
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(DOWNLOAD_SIZE))])
    return (b"d" * DOWNLOAD_CHUNK for _ in range(DOWNLOAD_SIZE // DOWNLOAD_CHUNK))


app = socketio.WSGIApp(sio, download)
