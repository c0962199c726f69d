"""The app every Python system of the benchmark suite serves (the Node peer mirrors it).

Events, each answered with an ack:

- ``whoami``: {slot, pid, sid}: which process serves the session (targeted emits need a
  receiver served by another worker than the sender);
- ``echo``: the data, unchanged;
- ``send_to`` {to, data}: emits 'msg' with data to the session ``to``, wherever it is served;
- ``broadcast`` data: emits 'news' with data to every client of every worker.

``sio`` is what sioctl serves (sioctl gives it its manager); ``build(manager)`` makes the same
app around a manager of the caller's choice, for the plain python-socketio systems.
"""

from __future__ import annotations

import os
from typing import Any

import socketio


def build(client_manager: socketio.Manager | None = None,
          async_mode: str | None = None) -> socketio.Server:
    """A socketio.Server with the benchmark's handlers; python-socketio's defaults otherwise."""
    server = socketio.Server(cors_allowed_origins="*", client_manager=client_manager,
                             async_mode=async_mode)
    slot = int(os.environ.get("SIOCTL_WORKER_SLOT", os.environ.get("BENCH_SLOT", "0")))

    @server.event
    def whoami(sid: str, data: Any = None) -> dict[str, Any]:
        return {"slot": slot, "pid": os.getpid(), "sid": sid}

    @server.event
    def echo(sid: str, data: Any = None) -> Any:
        return data

    @server.event
    def send_to(sid: str, order: dict[str, Any]) -> bool:
        server.emit("msg", order.get("data"), to=order["to"])
        return True

    @server.event
    def broadcast(sid: str, data: Any = None) -> bool:
        server.emit("news", data)
        return True

    return server


sio = build()
