"""python-engineio's ASGI driver (``engineio.async_drivers.asgi``) as the asyncio worker's
Engine.IO servers use it: the websocket wrapper without a coroutine of its own under an idle
websocket, its receive event read without ``wait()``'s, and the refusal of a websocket with
the rules' HTTP status.

A websocket's ASGI request lasts as long as the connection, so every coroutine on its chain
stays suspended under the idle websocket, a few hundred bytes each (docs/design.md, "Memory
per idle websocket", asyncio third round). python-engineio's ``WebSocket.__call__`` awaits the
accept and then the handler, and returns ``''``: :class:`AsgiWebSocket` returns the handler's
awaitable itself, and sioctl's handlers accept first (:func:`accept_websocket`). The library
contract lists ``WebSocket.__call__`` and ``WebSocket.wait`` as COPYs.
"""

from __future__ import annotations

from typing import Any

from engineio.async_drivers.asgi import WebSocket

# The scope key the worker's Engine.IO routing (``worker/aio/routes.EngineIoRoutes``) sets on a
# websocket request it gives straight to python-engineio: no application code is wrapped around
# that request, so it may return before the websocket ends (``async_ws_reader``'s hand-over).
ROUTED_BY_WORKER = "sioctl.routed_by_worker"


class AsgiWebSocket(WebSocket):
    """python-engineio's ASGI websocket whose call returns the handler's awaitable without
    accepting: the handler accepts (:func:`accept_websocket`) and returns None (the ASGI
    app's result, which uvicorn wants to be None; python-engineio's returned ``''``)."""

    def __call__(self, environ: dict[str, Any]) -> Any:
        self.asgi_receive = environ["asgi.receive"]
        self.asgi_send = environ["asgi.send"]
        self.sioctl_accepted = False
        self.sioctl_routed = ROUTED_BY_WORKER in (environ.get("asgi.scope") or ())
        return self.handler(self)

    async def sioctl_accept(self) -> None:
        """Accept the websocket (what python-engineio's ``__call__`` does before the
        handler)."""
        if not self.sioctl_accepted:
            self.sioctl_accepted = True
            await self.asgi_send({"type": "websocket.accept"})

    @classmethod
    def replacing(cls, factory: Any) -> Any:
        """This class in place of python-engineio's ASGI ``WebSocket`` (an ``_async`` table's
        ``websocket``); any other factory is kept."""
        return cls if factory is WebSocket else factory


async def accept_websocket(ws: Any) -> None:
    """Accept ``ws`` if it is an :class:`AsgiWebSocket` (python-engineio's own accepted it
    before calling the handler)."""
    accept = getattr(ws, "sioctl_accept", None)
    if accept is not None:
        await accept()


def asgi_frame(event: dict[str, Any]) -> Any:
    """The frame of an ASGI websocket event, as python-engineio's ``WebSocket.wait`` reads it:
    its bytes, else its text; ``OSError`` for anything but a ``websocket.receive``."""
    if event["type"] != "websocket.receive":
        raise OSError()
    data = event.get("bytes")
    if data is not None:
        return data
    data = event.get("text")
    if data is not None:
        return data
    raise OSError()


async def close_websocket(ws: Any) -> None:
    """The handler of a websocket that is refused once open (a session's second one)."""
    await accept_websocket(ws)
    await ws.close()


async def answered(response: Any) -> Any:
    """``response`` as an awaitable's result."""
    return response


def refusing_websockets(make_response: Any) -> Any:
    """The driver's ``make_response``, except that a websocket request refused with an HTTP
    error (a 400 of the rules, a 403 origin) gets that status, as on eventlet, where the
    server supports ASGI's websocket denial response (uvicorn does). python-engineio's ASGI
    driver answers every refused websocket with ``websocket.close``, which the server turns
    into a 403 whatever the reason."""

    async def refuse(status: str, headers: list[tuple[str, str]], payload: Any,
                     environ: dict[str, Any]) -> Any:
        scope = environ.get("asgi.scope") or {}
        if (scope.get("type") != "websocket" or status.startswith("200 ")
                or "websocket.http.response" not in (scope.get("extensions") or {})):
            return await make_response(status, headers, payload, environ)
        body = payload.encode() if isinstance(payload, str) else bytes(payload or b"")
        send = environ["asgi.send"]
        await send({"type": "websocket.http.response.start", "status": int(status.split()[0]),
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]})
        await send({"type": "websocket.http.response.body", "body": body})
        return None

    return refuse
