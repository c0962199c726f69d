"""worker/protocol/shared_writes.py on asyncio: which websockets get frames written straight to
their transport (a fan-out's shared frame, a session's own MESSAGE). The check runs on uvicorn's
real protocol classes, the one the asyncio worker serves websockets with (worker/aio/
ws_protocol.py's lean subclass) included: a check that missed it turned every direct write off
and the broadcast's CPU per delivery rose by half."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from sioctl.worker.aio.ws_protocol import lean_websocket_protocol
from sioctl.worker.protocol.shared_writes import sansio_protocol


class _Transport:
    """Enough of an asyncio transport for uvicorn's websocket protocol to be made."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.9", 1234), "sockname": ("127.0.0.1", 80)}.get(name)

    def is_closing(self) -> bool:
        return False


async def _app(scope: Any, receive: Any, send: Any) -> None:
    pass


def _protocol(lean: bool) -> Any:
    """uvicorn's websocket protocol, made as uvicorn makes it (inside the running loop)."""
    config = uvicorn.Config(_app, ws="websockets-sansio", lifespan="off", log_config=None)
    config.load()
    kind = config.ws_protocol_class
    if lean:
        kind = lean_websocket_protocol(kind)
    protocol = kind(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(_Transport())
    return protocol


@pytest.mark.parametrize("lean", [False, True])
def test_uvicorn_sansio_websockets_take_direct_writes(lean: bool) -> None:
    async def run() -> None:
        protocol = _protocol(lean)
        ws = SimpleNamespace(asgi_send=protocol.send)  # python-engineio's ASGI websocket
        assert sansio_protocol(ws) is protocol

    asyncio.run(run())


def test_another_websocket_does_not() -> None:
    class Other:
        async def send(self, message: Any) -> None:
            pass

    assert sansio_protocol(SimpleNamespace(asgi_send=Other().send)) is None
    assert sansio_protocol(SimpleNamespace()) is None
