"""A socketio.Server given its own JSON module (``json=``, tests/apps/ownjson_common.py), with
an ``echo`` event answered by an ack (tests/e2e/test_own_json.py; asyncio twin
tests/apps/asyncownjson.py)."""

from __future__ import annotations

from typing import Any

import socketio

from tests.apps.ownjson_common import OwnJson, echo

sio = socketio.Server(json=OwnJson, cors_allowed_origins="*")


@sio.on("echo")
def on_echo(sid: str, data: Any = None) -> Any:
    return echo(data)
