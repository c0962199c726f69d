"""The broadcast write path's core (worker/protocol/core/ws_frame.py): the shared frame is the
frame a websocket library writes for the same packet, built once per packet object, and the
rule for writing it straight to a socket."""

from __future__ import annotations

import pytest
from engineio import packet as eio_packet
from websockets.frames import Frame, Opcode

from sioctl.worker.protocol.core import ws_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("binary", [False, True])
def test_the_frame_is_the_one_a_websocket_library_writes(size: int, binary: bool) -> None:
    payload = b"a" * size
    reference = Frame(Opcode.BINARY if binary else Opcode.TEXT, payload).serialize(
        mask=False, extensions=[])
    assert ws_frame.frame(payload, binary) == reference


def test_a_packet_is_framed_once_and_utf8_encoded() -> None:
    pkt = eio_packet.Packet(eio_packet.MESSAGE, '2["news","é"]')
    first = ws_frame.shared_frame(pkt)
    assert first == Frame(Opcode.TEXT, '42["news","é"]'.encode()).serialize(
        mask=False, extensions=[])
    assert ws_frame.shared_frame(pkt) is first  # kept on the packet object


def test_a_binary_attachment_is_a_binary_frame() -> None:
    pkt = eio_packet.Packet(eio_packet.MESSAGE, b"\x00\x01")
    assert ws_frame.shared_frame(pkt) == b"\x82\x02\x00\x01"


def test_what_is_not_a_plain_engineio_packet_is_not_shared() -> None:
    class Other(eio_packet.Packet):
        pass

    assert ws_frame.shared_frame(Other(eio_packet.MESSAGE, "x")) is None
    assert ws_frame.shared_frame(ws_frame.FrameRest(b"rest")) is None


def test_a_frame_rest_encodes_as_raw_bytes() -> None:
    rest = ws_frame.FrameRest(b"\x81\x05hel")
    encoded = rest.encode()
    assert isinstance(encoded, ws_frame.RawFrame) and encoded == b"\x81\x05hel"


@pytest.mark.parametrize("change", [
    {"websocket_open": False}, {"upgrading": True}, {"closing": True}, {"queued": 1},
    {"writing": True}, {"compressed": True},
])
def test_a_frame_goes_straight_to_the_socket_only_when_nothing_is_ahead(
        change: dict[str, object]) -> None:
    free = {"websocket_open": True, "upgrading": False, "closing": False, "queued": 0,
            "writing": False, "compressed": False}
    assert ws_frame.can_write_now(**free)  # type: ignore[arg-type]
    assert not ws_frame.can_write_now(**{**free, **change})  # type: ignore[arg-type]


def test_a_long_poll_gets_a_binary_packet_in_base64_whoever_encoded_it_first() -> None:
    """A websocket recipient's writer encodes a shared binary packet raw, and python-engineio
    caches that: the long-poll of another recipient of the same packet gets a fresh copy,
    which encodes in base64."""
    shared = eio_packet.Packet(eio_packet.MESSAGE, b"\x00\x01")
    text = eio_packet.Packet(eio_packet.MESSAGE, "2[]")
    assert shared.encode() == b"\x00\x01"  # the websocket writer's (cached)
    polled = ws_frame.polling_packets([text, shared])
    assert polled[0] is text
    assert polled[1] is not shared and polled[1].encode(b64=True) == "bAAE="
    assert ws_frame.polling_packets([shared])[0].data == b"\x00\x01"


def test_the_shared_frame_leaves_a_binary_packet_unencoded() -> None:
    pkt = eio_packet.Packet(eio_packet.MESSAGE, b"\x00\x01")
    ws_frame.shared_frame(pkt)
    assert pkt.encode(b64=True) == "bAAE="
