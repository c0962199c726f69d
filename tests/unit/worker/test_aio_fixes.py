"""worker/aio/fixes.py: what the wrapped ASGI driver's translate_request gives, in process
(the wrapper is built with ``wrap``, the driver's table is left alone)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import engineio.async_drivers.asgi
import engineio.json
import pytest

from sioctl.worker.aio import fixes


def translated(kind: str) -> dict[str, Any]:
    first: dict[str, Any] = (
        {"type": "websocket.connect"} if kind == "websocket"
        else {"type": "http.request", "body": b"", "more_body": False})

    async def receive() -> dict[str, Any]:
        return first

    scope = {"type": kind, "method": "GET", "path": "/socket.io/",
             "query_string": b"EIO=4&transport=websocket", "headers": [],
             "client": ("127.0.0.9", 1234)}
    translate = fixes.wrap(engineio.async_drivers.asgi._async["translate_request"])
    result: dict[str, Any] = asyncio.run(translate(scope, receive, None))
    return result


def test_the_client_address_is_the_scope_s_and_a_websocket_has_no_body_to_keep() -> None:
    websocket, http = translated("websocket"), translated("http")
    for environ in (websocket, http):
        assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("127.0.0.9", "1234")
    # The driver's own wsgi.input (a class defined per call) is not kept by a websocket's
    # environ, which lives as long as its session.
    assert websocket["wsgi.input"] is fixes.NO_BODY
    assert asyncio.run(websocket["wsgi.input"].read()) == b""
    assert http["wsgi.input"] is not fixes.NO_BODY


@pytest.mark.parametrize("text", [
    '["echo",{"n":1,"t":1.5,"s":"x\\u00e9"}]', "[]", "12", '"\\ud83d\\ude00"', "[1e400]",
])
def test_the_reused_decoder_decodes_as_engineio_json(text: str) -> None:
    loads = fixes.reusing_decoder(engineio.json.loads, engineio.json._safe_int)
    assert loads(text) == engineio.json.loads(text)
    assert loads(text.encode()) == engineio.json.loads(text.encode())


@pytest.mark.parametrize("text", ["9" * 101, "\ufeff[]", "[1,", "", '{"a":}'])
def test_the_reused_decoder_refuses_what_engineio_json_refuses(text: str) -> None:
    loads = fixes.reusing_decoder(engineio.json.loads, engineio.json._safe_int)
    with pytest.raises(ValueError) as ours:
        loads(text)
    with pytest.raises(ValueError) as theirs:
        engineio.json.loads(text)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


@pytest.mark.parametrize("value", [
    ["echo", {"n": 1, "t": 1.5, "s": "x\u00e9", "l": [None, True, float("inf")]}], [], 12,
])
def test_the_reused_encoder_encodes_as_json_dumps(value: Any) -> None:
    dumps = fixes.reusing_encoder(json.dumps)
    assert dumps(value, separators=(",", ":")) == json.dumps(value, separators=(",", ":"))
    assert dumps(value) == json.dumps(value)  # another call: the original's
    assert dumps(value, indent=1, separators=(",", ":")) == json.dumps(
        value, indent=1, separators=(",", ":"))
    with pytest.raises(TypeError):
        dumps({"x": object()}, separators=(",", ":"))


def test_install_gives_engineio_json_both_once_in_a_fresh_process() -> None:
    code = ("import engineio.json as j; from sioctl.worker.aio import fixes; fixes.install();"
            "l, d = j.loads, j.dumps; fixes.install(); assert (j.loads, j.dumps) == (l, d);"
            "from socketio import packet; p = packet.Packet(encoded_packet='2[\"a\",12]');"
            "assert p.data == ['a', 12] and p.encode() == '2[\"a\",12]'; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "ok", proc.stderr
