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

``engineio.json`` (the JSON module python-socketio's and python-engineio's packets use unless
the app names its own) calls ``json.loads(s, parse_int=...)`` for every packet decoded and
python-socketio ``json.dumps(data, separators=(",", ":"))`` for every packet encoded: with
arguments other than the defaults, the standard library builds a new ``JSONDecoder`` /
``JSONEncoder`` on every call (~2.5 and ~0.7 µs of an echo's ~60-80, ``timeit``; 3-5% of an
asyncio worker's samples under echo). :func:`install` gives the module a ``loads`` and a
``dumps`` that use one decoder and one encoder made with those same arguments, and fall back
to the originals for any other call.

The same wrapper gives a websocket request's environ a shared empty ``wsgi.input``: the
driver's is an instance of a class it defines anew on every call (~2.4 KiB with the class), and
the environ of a session's connect request lives as long as the session (python-socketio keeps
it for ``sio.get_environ``); a websocket request has no body to read.
"""

from __future__ import annotations

import json
from typing import Any

import engineio.async_drivers.asgi
import engineio.json

_MARK = "_sioctl_client_in_environ"


class _NoBody:
    """The ``wsgi.input`` of a websocket request: nothing to read."""

    async def read(self, length: int | None = None) -> bytes:
        return b""


NO_BODY = _NoBody()


def install() -> None:
    """Wrap the ASGI driver's ``translate_request`` and give ``engineio.json`` its decoder and
    encoder made once (once per process)."""
    table = engineio.async_drivers.asgi._async
    original = table["translate_request"]
    if not getattr(original, _MARK, False):
        table["translate_request"] = wrap(original)
    module: Any = engineio.json
    if not getattr(module.loads, _MARK, False):
        module.loads = reusing_decoder(module.loads, module._safe_int)
        module.dumps = reusing_encoder(module.dumps)


def reusing_decoder(original: Any, parse_int: Any) -> Any:
    """``original`` (``engineio.json.loads``: ``json.loads`` with ``parse_int``) with one
    ``JSONDecoder(parse_int=parse_int)`` for a plain string, which is what ``json.loads``
    decodes it with; other calls (bytes, keyword arguments, a byte-order mark, which
    ``json.loads`` refuses with its own message) go to ``original``."""
    decode = json.JSONDecoder(parse_int=parse_int).decode

    def loads(s: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or type(s) is not str or s.startswith("\ufeff"):
            return original(s, *args, **kwargs)
        return decode(s)

    setattr(loads, _MARK, True)
    return loads


_COMPACT = (",", ":")


def reusing_encoder(original: Any) -> Any:
    """``original`` (``json.dumps``) with one ``JSONEncoder(separators=(",", ":"))`` for the
    call python-socketio makes, ``dumps(obj, separators=(",", ":"))``, which is what
    ``json.dumps`` encodes it with; any other call goes to ``original``."""
    encode = json.JSONEncoder(separators=_COMPACT).encode

    def dumps(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if args or len(kwargs) != 1 or kwargs.get("separators") != _COMPACT:
            return original(obj, *args, **kwargs)
        return encode(obj)

    setattr(dumps, _MARK, True)
    return dumps


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
