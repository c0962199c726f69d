"""A Starlette app (the framework under FastAPI) mounting tests/apps/asyncchat.py's AsyncServer at
/ws, with a route of its own and a lifespan: the shape of a FastAPI + python-socketio app.

Its lifespan fails when STARLETTE_STARTUP_FAILS is set (Starlette reports the exception's
traceback as the failure message).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import socketio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from tests.apps.asyncchat import LIFESPAN, sio


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("starlette ok")


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    if os.environ.get("STARLETTE_STARTUP_FAILS"):
        raise RuntimeError("cannot open the database pool")
    LIFESPAN["started"] = True
    yield


# Starlette keeps the full path in a mounted app's scope, so the socket.io path names the mount.
app = Starlette(
    routes=[Route("/health", health),
            Mount("/ws", socketio.ASGIApp(sio, socketio_path="ws/socket.io"))],
    lifespan=lifespan,
)
