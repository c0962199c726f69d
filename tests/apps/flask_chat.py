"""A Flask-SocketIO app as its users write it: ``SocketIO(flask_app)``, handlers with
``flask.request.sid``, ``emit`` / ``join_room`` from flask_socketio, and plain Flask routes
beside Socket.IO. sioctl serves it as ``tests.apps.flask_chat:app`` (the Flask app) on
eventlet, finding the socketio.Server that Flask-SocketIO made."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, request
from flask_socketio import SocketIO, emit, join_room

app = Flask(__name__)
socketio = SocketIO(app, async_mode="eventlet")


def _slot() -> int:
    return int(os.environ.get("SIOCTL_WORKER_SLOT", "-1"))


@app.route("/hello")
def hello() -> Any:
    """A Flask route, served by the same worker process as the Socket.IO traffic."""
    return jsonify(slot=_slot(), remote_addr=request.remote_addr)


@socketio.on("whoami")
def whoami(data: Any = None) -> dict[str, Any]:
    return {"slot": _slot(), "pid": os.getpid(), "sid": request.sid,  # type: ignore[attr-defined]
            "remote_addr": request.remote_addr}


@socketio.on("echo")
def echo(data: Any = None) -> Any:
    return data


@socketio.on("join")
def join(room: str) -> dict[str, Any]:
    join_room(room)
    return {"room": room, "slot": _slot()}


@socketio.on("to_room")
def to_room(order: dict[str, Any]) -> bool:
    """Emit 'news' to everyone in order['room'], on every worker."""
    emit("news", order["data"], to=order["room"])
    return True


@socketio.on("broadcast")
def broadcast(data: Any = None) -> bool:
    emit("news", data, broadcast=True)
    return True
