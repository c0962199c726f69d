"""``core/binary_check``: python-socketio's ``Packet.data_is_binary`` replaced by one that
answers the same for every input (installed on a copy of the class here: the library's own
is left alone in the test process)."""

from __future__ import annotations

from typing import Any

import pytest
import socketio.packet

from sioctl.worker.protocol.core import binary_check

ORIGINAL = socketio.packet.Packet.__dict__["data_is_binary"]


class _Bytes(bytes):
    pass


class _List(list):  # type: ignore[type-arg]
    pass


class _Dict(dict):  # type: ignore[type-arg]
    pass


CASES: list[Any] = [
    None, True, 0, 1.5, "text", b"raw", bytearray(b"raw"), _Bytes(b"x"), memoryview(b"x"),
    [], {}, [1, "a", None], [1, [2, [3, b"deep"]]], {"a": 1, "b": {"c": [None, bytearray(1)]}},
    {b"key": 1}, ("tuple", b"x"), _List([b"x"]), _Dict(v=b"x"), _List([1]), _Dict(v=1),
    [{"t": 1.0, "payload": "x" * 32}], [[[]], {}, [{}]], {1, 2},
]


@pytest.mark.parametrize("data", CASES)
def test_the_same_answer_as_python_socketio(data: Any) -> None:
    original = ORIGINAL.__get__(None, socketio.packet.Packet)
    assert binary_check.data_is_binary(data) is original(data)


def test_install_replaces_the_classmethod_once_and_packets_see_it() -> None:
    class Packet(socketio.packet.Packet):
        data_is_binary = ORIGINAL

    binary_check.install(Packet)
    installed = Packet.__dict__["data_is_binary"]
    assert installed is not ORIGINAL
    binary_check.install(Packet)
    assert Packet.__dict__["data_is_binary"] is installed  # a second install: no change
    assert Packet(socketio.packet.EVENT, data=["e", b"x"]).packet_type == \
        socketio.packet.BINARY_EVENT
    assert Packet(socketio.packet.ACK, data=[{"a": [1]}]).packet_type == socketio.packet.ACK
    assert socketio.packet.Packet.__dict__["data_is_binary"] is ORIGINAL
