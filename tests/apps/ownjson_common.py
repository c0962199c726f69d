"""The JSON module of tests/apps/ownjson.py and its asyncio twin, which give their server
``json=`` (python-socketio's own option): every packet of theirs, Engine.IO's and Socket.IO's,
is decoded and encoded by it, never by ``engineio.json`` (whose decoder and encoder the workers
replace at boot, worker/protocol/core/json_codec.py). Both of its marks show on the client:
decoded floats arrive in the handlers as strings (``parse_float=str``), and the encoder writes
the string ``"echo-me"`` as ``"encoded-by-own"``."""

from __future__ import annotations

import json
from typing import Any

MARKED, ENCODED = "echo-me", "encoded-by-own"


def _marked(value: Any) -> Any:
    if value == MARKED:
        return ENCODED
    if isinstance(value, list):
        return [_marked(item) for item in value]
    if isinstance(value, dict):
        return {key: _marked(item) for key, item in value.items()}
    return value


class OwnJson:
    """A ``json=`` module: ``json.loads`` with ``parse_float=str``, ``json.dumps`` of the data
    with ``"echo-me"`` rewritten."""

    @staticmethod
    def loads(s: Any, *args: Any, **kwargs: Any) -> Any:
        return json.loads(s, *args, parse_float=str, **kwargs)

    @staticmethod
    def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
        return json.dumps(_marked(obj), *args, **kwargs)


def echo(data: Any = None) -> Any:
    """The app's ``echo`` handler's answer: the data as decoded."""
    return data
