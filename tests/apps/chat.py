"""A plain python-socketio app: no manager, no async_mode, as a user would write it.

Events answer with an ack so tests can ask which worker serves them and what the worker saw.
"""

from __future__ import annotations

import contextvars
import os
import threading
from typing import Any

import socketio

sio = socketio.Server(cors_allowed_origins="*")


def _slot() -> int:
    return int(os.environ.get("SIOCTL_WORKER_SLOT", "-1"))


@sio.event
def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    sio.save_session(sid, {"remote_addr": environ.get("REMOTE_ADDR")})


@sio.event
def whoami(sid: str, data: Any = None) -> dict[str, Any]:
    """Which worker serves this session, and the client address that worker saw."""
    session = sio.get_session(sid)
    return {
        "slot": _slot(),
        "pid": os.getpid(),
        "remote_addr": session.get("remote_addr"),
        "sid": sid,
    }


@sio.event
def getenv(sid: str, name: str) -> str | None:
    """The worker's environment variable ``name`` (raw_env, -e KEY=VALUE)."""
    return os.environ.get(name)


@sio.event
def echo(sid: str, data: Any = None) -> Any:
    return data


# Per session: the event echo_held waits on until the session sends 'release'.
_held: dict[str, Any] = {}


@sio.event
def echo_held(sid: str, data: Any = None) -> Any:
    """``data``, answered once this session has sent 'release' (its other events go on
    meanwhile: each handler runs in a green thread of its own)."""
    _held.setdefault(sid, sio.eio.create_event()).wait(60)
    _held.pop(sid, None)
    return data


@sio.event
def release(sid: str, data: Any = None) -> bool:
    """Let this session's echo_held answer."""
    _held.setdefault(sid, sio.eio.create_event()).set()
    return True


@sio.event
def fail(sid: str, data: Any = None) -> None:
    """A handler that raises (the session goes on)."""
    raise RuntimeError("this handler fails on purpose")


# What one event's handler may leave behind for the next: a context variable's value and a
# threading.local's (a green thread's own under eventlet).
_context_mark: contextvars.ContextVar[Any] = contextvars.ContextVar("mark", default=None)
_local_marks = threading.local()


@sio.event
def mark_context(sid: str, value: Any = None) -> Any:
    """Set a context variable to ``value``; answer what it held as this handler started."""
    before = _context_mark.get()
    _context_mark.set(value)
    return before


@sio.event
def mark_local(sid: str, value: Any = None) -> Any:
    """As mark_context, with a threading.local."""
    before = getattr(_local_marks, "mark", None)
    _local_marks.mark = value
    return before


@sio.event
def join(sid: str, room: str) -> dict[str, Any]:
    sio.enter_room(sid, room)
    return {"room": room, "slot": _slot()}


@sio.event
def leave(sid: str, room: str) -> dict[str, Any]:
    sio.leave_room(sid, room)
    return {"room": room, "slot": _slot()}


@sio.event
def broadcast(sid: str, data: Any = None) -> bool:
    """Emit 'news' to every client on every worker."""
    sio.emit("news", data)
    return True


@sio.event
def to_room(sid: str, message: dict[str, Any]) -> bool:
    """Emit 'news' with message['data'] to the members of message['room'] only."""
    sio.emit("news", message.get("data"), to=message["room"])
    return True


@sio.on("connect", namespace="/admin")
def admin_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    """A namespace that only lets in clients whose CONNECT carries {"token": "secret"}."""
    if not isinstance(auth, dict) or auth.get("token") != "secret":
        raise socketio.exceptions.ConnectionRefusedError("Not authorized")


@sio.on("echo", namespace="/admin")
def admin_echo(sid: str, data: Any = None) -> Any:
    return data


@sio.on("connect", namespace="/chat")
def chat_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    """/chat keeps the auth payload its client sent (v2 clients: the namespace's query)."""
    sio.save_session(sid, {"auth": auth}, namespace="/chat")


@sio.on("auth", namespace="/chat")
def chat_auth(sid: str, data: Any = None) -> Any:
    return sio.get_session(sid, namespace="/chat")["auth"]


@sio.on("whoami", namespace="/chat")
def chat_whoami(sid: str, data: Any = None) -> dict[str, Any]:
    """The id this server knows the /chat socket by."""
    return {"sid": sid, "slot": _slot()}
