"""worker/protocol/core/json_codec.py: engineio.json's decoder and encoder made once give the
originals' results and errors; ``install`` (what both engines' workers call at boot) is checked
in a fresh interpreter, so this process's engineio.json stays the library's."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import engineio.json
import pytest

from sioctl.worker.protocol.core import json_codec


@pytest.mark.parametrize("text", [
    '["echo",{"n":1,"t":1.5,"s":"x\\u00e9"}]', "[]", "12", '"\\ud83d\\ude00"', "[1e400]",
    "[-12345678901234567890]",
])
def test_the_reused_decoder_decodes_as_engineio_json(text: str) -> None:
    loads = json_codec.reusing_decoder(engineio.json.loads, engineio.json._safe_int)
    assert loads(text) == engineio.json.loads(text)
    assert loads(text.encode()) == engineio.json.loads(text.encode())  # bytes: the original's
    assert loads(bytearray(text.encode())) == engineio.json.loads(bytearray(text.encode()))


@pytest.mark.parametrize("text", ["9" * 101, "[" + "9" * 101 + "]", "\ufeff[]", "[1,", "",
                                  '{"a":}'])
def test_the_reused_decoder_refuses_what_engineio_json_refuses(text: str) -> None:
    """Huge integers (engineio.json's guard), a byte-order mark, broken JSON: the same error
    with the same message."""
    loads = json_codec.reusing_decoder(engineio.json.loads, engineio.json._safe_int)
    with pytest.raises(ValueError) as ours:
        loads(text)
    with pytest.raises(ValueError) as theirs:
        engineio.json.loads(text)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


@pytest.mark.parametrize("raw", [
    b'{"method":"emit","data":[{"p":3,"t":1.5}],"s":"x\xc3\xa9","seq":12}', b"{}",
    b'{"a":"\\ud83d\\ude00"}', b'{"a":' + b"9" * 101 + b"}", b"{", b'{"a":}',
    b'{"a":"\xff"}', '{"a":1}'.encode("utf-16-le"), b"\xef\xbb\xbf{}",
    b'[{"seq":1},{"seq":2,"s":"x\xc3\xa9"}]', b"[]", b"[", b"[1,]", '[1]'.encode("utf-16-le"),
])
def test_the_reused_decoder_decodes_an_object_s_bytes_as_engineio_json(raw: bytes) -> None:
    """A worker's message heard from Redis (bytes opening a JSON object, or an array of
    them: messages merged on a worker's channel) takes the reused
    decoder: the same value, or the same error with the same message, as engineio.json's;
    bytes in another encoding (UTF-16, a byte-order mark) still go to the original."""
    loads = json_codec.reusing_decoder(engineio.json.loads, engineio.json._safe_int)
    try:
        theirs: Any = engineio.json.loads(raw)
    except ValueError as exc:
        theirs = (type(exc), str(exc))
    try:
        ours: Any = loads(raw)
    except ValueError as exc:
        ours = (type(exc), str(exc))
    assert ours == theirs


@pytest.mark.parametrize("value", [None, 12, ["a"], {"a": 1}])
def test_the_reused_decoder_refuses_non_text_as_json_loads_does(value: Any) -> None:
    loads = json_codec.reusing_decoder(engineio.json.loads, engineio.json._safe_int)
    with pytest.raises(TypeError) as ours:
        loads(value)
    with pytest.raises(TypeError) as theirs:
        engineio.json.loads(value)
    assert str(ours.value) == str(theirs.value)


def test_the_reused_decoder_hands_other_arguments_to_the_original() -> None:
    loads = json_codec.reusing_decoder(engineio.json.loads, engineio.json._safe_int)
    assert loads("[1.5]", parse_float=str) == ["1.5"]
    assert loads("[" + "9" * 101 + "]", parse_int=int) == [int("9" * 101)]


@pytest.mark.parametrize("value", [
    ["echo", {"n": 1, "t": 1.5, "s": "x\u00e9", "l": [None, True, float("inf")]}], [], 12,
    {"\ud83d": "\x00"},
])
def test_the_reused_encoder_encodes_as_json_dumps(value: Any) -> None:
    dumps = json_codec.reusing_encoder(json.dumps)
    assert dumps(value, separators=(",", ":")) == json.dumps(value, separators=(",", ":"))
    assert dumps(value) == json.dumps(value)  # another call: the original's
    assert dumps(value, indent=1, separators=(",", ":")) == json.dumps(
        value, indent=1, separators=(",", ":"))
    with pytest.raises(TypeError):
        dumps({"x": object()}, separators=(",", ":"))


def run_fresh(code: str, *args: str) -> str:
    """What ``code`` prints, run in a fresh interpreter with ``args``."""
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_install_replaces_engineio_json_once_for_both_libraries_packets() -> None:
    code = """if True:
        import engineio.json as j
        from engineio import packet as eio_packet
        from socketio import packet
        from sioctl.worker.protocol.core import json_codec, sio_rules
        json_codec.install()
        l, d = j.loads, j.dumps
        json_codec.install()
        assert (j.loads, j.dumps) == (l, d)
        assert getattr(l, json_codec._MARK) and getattr(d, json_codec._MARK)
        p = packet.Packet(encoded_packet='2["a",12]')
        assert p.data == ["a", 12] and p.encode() == '2["a",12]'
        assert packet.Packet(packet.EVENT, data=["a", {"b": 1}]).encode() == '2["a",{"b":1}]'
        assert eio_packet.Packet(encoded_packet='4{"a":1}').data == {"a": 1}
        assert eio_packet.Packet(eio_packet.MESSAGE, {"a": 1}).encode() == '4{"a":1}'
        try:
            sio_rules.decode_client_packet('2["a",' + "9" * 101 + "]", packet.Packet)
        except sio_rules.InvalidPacket as exc:
            assert "Integer is too large" in str(exc), exc
        else:
            raise AssertionError("a huge integer was decoded")
        print("ok")
    """
    assert run_fresh(code) == "ok"


@pytest.mark.parametrize("order", ["server-first", "install-first"])
def test_an_app_s_own_json_is_left_alone(order: str) -> None:
    """An app that gives its server ``json=`` has its own module decode and encode every packet,
    whether the server was built before the worker installed the codec or after."""
    code = """if True:
        import json, sys
        import socketio, engineio.json
        from engineio import packet as eio_packet
        from socketio import packet
        from sioctl.worker.protocol.core import json_codec, sio_rules
        calls = []
        class Own:
            @staticmethod
            def loads(s, *args, **kwargs):
                calls.append("loads")
                return json.loads(s, *args, **kwargs)
            @staticmethod
            def dumps(obj, *args, **kwargs):
                calls.append("dumps")
                return json.dumps(obj, *args, **kwargs)
        if sys.argv[1] == "server-first":
            sio = socketio.Server(json=Own)
            json_codec.install()
        else:
            json_codec.install()
            sio = socketio.Server(json=Own)
        assert packet.Packet.json is Own and eio_packet.Packet.json is Own
        assert not hasattr(Own.loads, json_codec._MARK)
        p = sio_rules.decode_client_packet('2["a",1]', sio.packet_class)
        assert p.data == ["a", 1] and calls == ["loads"], calls
        assert packet.Packet(packet.EVENT, data=["a"]).encode() == '2["a"]'
        assert calls == ["loads", "dumps"], calls
        print("ok")
    """
    assert run_fresh(code, order) == "ok"
