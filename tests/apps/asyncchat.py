"""tests/apps/chat.py on the asyncio engine: a socketio.AsyncServer, as a FastAPI/Starlette user
would write it, with the same events, so the same tests run on both engines.

``sio`` is the bare AsyncServer; ``app`` is the ``socketio.ASGIApp`` mounting it beside a tiny
plain ASGI app (``/health`` answers ``ok``) whose lifespan the worker runs: its startup fails
when ASYNCCHAT_STARTUP_FAILS is set, and its shutdown appends the worker's pid to the file named
by ASYNCCHAT_SHUTDOWN_MARKER.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from typing import Any

import socketio

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
# What the ASGI lifespan did in this process.
LIFESPAN = {"started": False}


def _slot() -> int:
    return int(os.environ.get("SIOCTL_WORKER_SLOT", "-1"))


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    # As chat.py: REMOTE_ADDR (python-engineio's ASGI driver says 127.0.0.1 there; the worker
    # puts the ASGI scope's client in it, see worker/aio/fixes.py).
    await sio.save_session(sid, {"remote_addr": environ.get("REMOTE_ADDR")})


@sio.event
async def whoami(sid: str, data: Any = None) -> dict[str, Any]:
    """Which worker serves this session, and the client address that worker saw."""
    session = await sio.get_session(sid)
    return {
        "slot": _slot(),
        "pid": os.getpid(),
        "remote_addr": session.get("remote_addr"),
        "sid": sid,
        "engine": "asyncio",
        "lifespan_started": LIFESPAN["started"],
    }


@sio.event
async def getenv(sid: str, name: str) -> str | None:
    """The worker's environment variable ``name`` (raw_env, -e KEY=VALUE)."""
    return os.environ.get(name)


@sio.event
async def echo(sid: str, data: Any = None) -> Any:
    return data


# As chat.py: what one event's handler may leave behind for the next.
_context_mark: contextvars.ContextVar[Any] = contextvars.ContextVar("mark", default=None)


@sio.event
async def mark_context(sid: str, value: Any = None) -> Any:
    """As chat.py: set a context variable; answer what it held as this handler started."""
    before = _context_mark.get()
    _context_mark.set(value)
    return before


# Per session: the event echo_held waits on until the session sends 'release' (as chat.py).
_held: dict[str, Any] = {}


@sio.event
async def echo_held(sid: str, data: Any = None) -> Any:
    """As chat.py: ``data`` once this session has sent 'release'."""
    await asyncio.wait_for(_held.setdefault(sid, sio.eio.create_event()).wait(), 60)
    _held.pop(sid, None)
    return data


@sio.event
async def release(sid: str, data: Any = None) -> bool:
    """Let this session's echo_held answer."""
    _held.setdefault(sid, sio.eio.create_event()).set()
    return True


@sio.event
async def fail(sid: str, data: Any = None) -> None:
    """As chat.py: a handler that raises."""
    raise RuntimeError("this handler fails on purpose")


@sio.event
async def join(sid: str, room: str) -> dict[str, Any]:
    await sio.enter_room(sid, room)
    return {"room": room, "slot": _slot()}


@sio.event
async def leave(sid: str, room: str) -> dict[str, Any]:
    await sio.leave_room(sid, room)
    return {"room": room, "slot": _slot()}


@sio.event
async def broadcast(sid: str, data: Any = None) -> bool:
    """Emit 'news' to every client on every worker."""
    await sio.emit("news", data)
    return True


@sio.event
async def to_room(sid: str, message: dict[str, Any]) -> bool:
    """Emit 'news' with message['data'] to the members of message['room'] only."""
    await sio.emit("news", message.get("data"), to=message["room"])
    return True


@sio.on("connect", namespace="/admin")
async def admin_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    """A namespace that only lets in clients whose CONNECT carries {"token": "secret"}."""
    if not isinstance(auth, dict) or auth.get("token") != "secret":
        raise socketio.exceptions.ConnectionRefusedError("Not authorized")


@sio.on("echo", namespace="/admin")
async def admin_echo(sid: str, data: Any = None) -> Any:
    return data


@sio.on("connect", namespace="/chat")
async def chat_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    """/chat keeps the auth payload its client sent (v2 clients: the namespace's query)."""
    await sio.save_session(sid, {"auth": auth}, namespace="/chat")


@sio.on("auth", namespace="/chat")
async def chat_auth(sid: str, data: Any = None) -> Any:
    return (await sio.get_session(sid, namespace="/chat"))["auth"]


@sio.on("whoami", namespace="/chat")
async def chat_whoami(sid: str, data: Any = None) -> dict[str, Any]:
    """The id this server knows the /chat socket by."""
    return {"sid": sid, "slot": _slot()}


async def health_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI app: ``/health`` and a lifespan."""
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                if os.environ.get("ASYNCCHAT_STARTUP_FAILS"):
                    await send({"type": "lifespan.startup.failed",
                                "message": "database unreachable"})
                    return
                LIFESPAN["started"] = True
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                marker = os.environ.get("ASYNCCHAT_SHUTDOWN_MARKER")
                if marker:
                    with open(marker, "a") as f:
                        f.write(f"{os.getpid()}\n")
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        await receive()
        ok = scope["path"] == "/health"
        body = b"ok" if ok else b"not found"
        await send({"type": "http.response.start", "status": 200 if ok else 404,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})


app = socketio.ASGIApp(sio, other_asgi_app=health_app)
