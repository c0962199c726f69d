"""Engine.IO protocol 3 framing (worker/protocol/core/eio3_payload.py), without a server.

Expected encodings are the examples of docs/engine.io-protocol/v3.md ("Payload") and what
engine.io-parser 2 (socket.io-client@2) produces; the end-to-end tests run the real client.
"""

from __future__ import annotations

import pytest
from engineio import packet

from sioctl.worker.protocol.core import eio3_payload as p
from sioctl.worker.protocol.core.eio_rules import InvalidPacket


def message(data: str | bytes) -> packet.Packet:
    return packet.Packet(packet.MESSAGE, data)


def test_lengths_count_utf16_code_units() -> None:
    assert p.js_length("hello") == 5
    assert p.js_length("€") == 1  # one code unit, three UTF-8 bytes
    assert p.js_length("😀") == 2  # a surrogate pair in JavaScript


def test_text_payload_as_the_specification_shows() -> None:
    # v3 > Payload: "6:4hello2:4€" (characters, not bytes).
    assert p.encode_text_payload([message("hello"), message("€")]) == "6:4hello2:4€"
    # Binary without XHR2: "2:4€10:b4AQIDBA==".
    assert p.encode_text_payload([message("€"), message(b"\x01\x02\x03\x04")]) == \
        "2:4€10:b4AQIDBA=="
    assert p.encode_text_payload([message("😀")]) == "3:4😀"


def test_binary_payload_as_the_specification_shows() -> None:
    # v3 > Payload, XHR2: <00 04 ff 34 e2 82 ac 01 04 ff 01 02 03 04> (the binary packet's
    # length includes its type byte: 5, as engine.io-parser 2 writes it).
    encoded = p.encode_binary_payload([message("€"), message(b"\x01\x02\x03\x04")])
    assert encoded == bytes([0, 4, 255, 0x34, 0xE2, 0x82, 0xAC,
                             1, 5, 255, 4, 1, 2, 3, 4])
    decoded = p.decode_binary_payload(encoded)
    assert [(d.packet_type, d.data) for d in decoded] == [
        (packet.MESSAGE, "€"), (packet.MESSAGE, b"\x01\x02\x03\x04")]


def test_long_lengths_are_written_digit_by_digit() -> None:
    encoded = p.encode_binary_payload([message("x" * 122)])
    assert encoded[:5] == bytes([0, 1, 2, 3, 255])  # 123 bytes: "4" + 122 x
    assert p.decode_binary_payload(encoded)[0].data == "x" * 122


def test_text_payload_round_trip_with_every_kind_of_packet() -> None:
    packets = [packet.Packet(packet.PING, "probe"), message('2["ev","é😀"]'),
               message(b"\x00\xff"), packet.Packet(packet.CLOSE)]
    decoded = p.decode_text_payload(p.encode_text_payload(packets))
    assert [(d.packet_type, d.data) for d in decoded] == [
        (packet.PING, "probe"), (packet.MESSAGE, '2["ev","é😀"]'),
        (packet.MESSAGE, b"\x00\xff"), (packet.CLOSE, "")]


def test_websocket_binary_frames_carry_their_type() -> None:
    assert p.encode_packet(message(b"\x01"), b64=False) == b"\x04\x01"
    assert p.encode_packet(message(b"\x01"), b64=True) == "b4AQ=="
    assert p.decode_packet_v3(b"\x04\x01").data == b"\x01"


def test_response_kinds() -> None:
    text = [message("a")]
    binary = [message(b"\x01")]
    assert p.encode_response(text, b64=False, jsonp_index=None) == (b"2:4a", p.TEXT_CONTENT_TYPE)
    assert p.encode_response(binary, b64=False, jsonp_index=None)[1] == p.BINARY_CONTENT_TYPE
    assert p.encode_response(binary, b64=True, jsonp_index=None) == (
        b"6:b4AQ==", p.TEXT_CONTENT_TYPE)
    body, kind = p.encode_response([message('a"\\\n')], b64=False, jsonp_index=3)
    assert kind == p.JSONP_CONTENT_TYPE
    assert body == b'___eio[3]("5:4a\\"\\\\\\n");'


def test_jsonp_post_body() -> None:
    # v3 > JSONP > Posting data: d=<payload>, with \n escaped as \\n by the client.
    body = b"d=" + b"4%3A4a%5Cnb"  # the payload 4:4a<newline>b, the newline escaped
    [decoded] = p.decode_post_body(body, "application/x-www-form-urlencoded", jsonp=True)
    assert decoded.data == "a\nb"
    with pytest.raises(InvalidPacket):
        p.decode_post_body(b"x=1", "application/x-www-form-urlencoded", jsonp=True)


@pytest.mark.parametrize("body", [
    "", "4", "4:", "x:4abc", "5:4abc", "0:", "1:9", "2:4😀", "3:b5AQ", "4:b4@@",
    "99999999999:4",
])
def test_bad_text_payloads_are_refused(body: str) -> None:
    with pytest.raises(InvalidPacket):
        p.decode_text_payload(body)


@pytest.mark.parametrize("body", [
    b"", b"\x02\x01\xff4", b"\x00\x05\xff4a", b"\x00\xff4", b"\x00\x0a\xff4",
    b"\x01\x02\xff\x02\x01", b"\x00\x02\xff\xc3\x28",
])
def test_bad_binary_payloads_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidPacket):
        p.decode_binary_payload(body)
