"""tests/apps/asyncchat.py's AsyncServer behind an ASGI middleware of the application's own that
counts the websocket requests it has passed on and that have not returned: code an app wraps
around python-socketio's ASGI app sees each websocket's request last as long as the websocket
(the asyncio worker's hand-over to its protocol reader must not end it early)."""

from __future__ import annotations

from typing import Any

import socketio

from tests.apps.asyncchat import sio

OPEN = {"websockets": 0}


class CountsWebsockets:
    """An ASGI middleware: ``OPEN["websockets"]`` is the number of websocket requests under way."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        OPEN["websockets"] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            OPEN["websockets"] -= 1


@sio.event
async def open_websockets(sid: str, data: Any = None) -> int:
    return OPEN["websockets"]


app = CountsWebsockets(socketio.ASGIApp(sio))
