"""What the asyncio worker corrects in python-engineio's ASGI driver, patched in the worker
process only (the protocol rules' own corrections are in worker/protocol's async shells).

The ASGI driver's ``translate_request`` sets ``REMOTE_ADDR`` to ``127.0.0.1`` whoever the client
is (and ``REMOTE_PORT`` to 0): connect handlers written for the eventlet engine, which read
``environ["REMOTE_ADDR"]``, would see every client as 127.0.0.1. The driver's table entry is
wrapped so that both come from the ASGI scope's ``client``: the address the master named
(worker/aio/serving.py, ``ClientAddresses``). This is the driver's environ, not the protocol, so
it stays here rather than in the async shell. It must be installed before the protocol rules:
their shell keeps the table's ``translate_request`` it finds when it adopts a server
(worker/protocol/async_engineio.py, ``adopt``).

The same wrapper gives a websocket request's environ a shared empty ``wsgi.input``: the
driver's is an instance of a class it defines anew on every call (~2.4 KiB with the class), and
the environ of a session's connect request lives as long as the session (python-socketio keeps
it for ``sio.get_environ``); a websocket request has no body to read.
"""

from __future__ import annotations

from typing import Any

import engineio.async_drivers.asgi

_MARK = "_sioctl_client_in_environ"


class _NoBody:
    """The ``wsgi.input`` of a websocket request: nothing to read."""

    async def read(self, length: int | None = None) -> bytes:
        return b""


NO_BODY = _NoBody()


def install() -> None:
    """Wrap the ASGI driver's ``translate_request`` (once per process). (``engineio.json``'s
    decoder and encoder made once are both engines': worker/protocol/core/json_codec.py.)"""
    table = engineio.async_drivers.asgi._async
    original = table["translate_request"]
    if not getattr(original, _MARK, False):
        table["translate_request"] = wrap(original)


def wrap(original: Any) -> Any:
    """``original`` (the driver's ``translate_request``) with the client's address in the
    environ and, for a websocket, the shared empty ``wsgi.input``."""

    async def translate_request(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        environ = await original(scope, receive, send)
        client = scope.get("client")
        if environ and client:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
        if environ and scope.get("type") == "websocket":
            environ["wsgi.input"] = NO_BODY
        return environ

    setattr(translate_request, _MARK, True)
    return translate_request
