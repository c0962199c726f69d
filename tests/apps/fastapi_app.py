"""A FastAPI app as its users write it: ``socketio.ASGIApp(sio, other_asgi_app=fastapi_app)``,
with a ``lifespan=``, a route of its own and the socket events of tests/apps/asyncchat.py.

The lifespan appends ``startup PID`` and ``shutdown PID`` to the file named by
FASTAPI_LIFESPAN_LOG, so a test sees it run once per worker.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import socketio
from fastapi import FastAPI

from tests.apps.asyncchat import LIFESPAN, sio


def _note(what: str) -> None:
    path = os.environ.get("FASTAPI_LIFESPAN_LOG")
    if path:
        # One short O_APPEND write: lines of several workers never interleave.
        with open(path, "a") as log:
            log.write(f"{what} {os.getpid()}\n")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    _note("startup")
    LIFESPAN["started"] = True
    yield
    _note("shutdown")


fastapi_app = FastAPI(lifespan=lifespan)


@fastapi_app.get("/api/worker")
async def worker() -> dict[str, Any]:
    return {"pid": os.getpid(), "slot": int(os.environ.get("SIOCTL_WORKER_SLOT", "-1")),
            "lifespan_started": LIFESPAN["started"]}


app = socketio.ASGIApp(sio, other_asgi_app=fastapi_app)
