"""Engine.IO protocol 3 framing: packets, polling payloads and JSONP, both directions.

Written from the protocol's revision 3 (socketio/socket.io, docs/engine.io-protocol/v3.md;
sections named below as "v3 > ..."), as socket.io-client@2 (engine.io-client 3,
engine.io-parser 2) sends and reads them. Pure functions over python-engineio's
``engineio.packet.Packet``, so they are tested without a server (core: the sync shell that
uses them is ``worker/protocol/eio3.py``).

How v3 differs from v4 on the wire:

- a binary packet carries its type: a leading byte on websockets and in binary payloads,
  ``b<type><base64>`` in text (v4: bare bytes, ``b<base64>``);
- a polling payload is ``<length>:<packet>`` repeated, the length counted in characters as
  JavaScript counts them (UTF-16 code units), not bytes (v4: packets separated by ``\\x1e``);
- a client that supports XHR2 and does not ask for ``b64=1`` gets payloads holding binary as
  one binary body (v3 > Payload, "When XHR2 is supported").
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import parse_qs

from engineio import packet

from .eio_rules import InvalidPacket, decode_packet

# v3 > Payload (XHR2): each packet starts with 0 (string) or 1 (binary), then its length as
# one byte per decimal digit, then 255.
STRING_MARK = 0
BINARY_MARK = 1
LENGTH_END = 255
# A length with more digits than this is no length a server would accept (maxPayload is far
# smaller); refusing it early bounds the parsing loops.
MAX_LENGTH_DIGITS = 10
BINARY_CONTENT_TYPE = "application/octet-stream"
TEXT_CONTENT_TYPE = "text/plain; charset=UTF-8"
JSONP_CONTENT_TYPE = "text/javascript; charset=UTF-8"
# v3 > JSONP > Posting data: "\n gets escaped as \\n prior to being POSTd"; a backslash
# before it means the client escaped a literal backslash-n, which stays.
_ESCAPED_NEWLINE = re.compile(r"(\\)?\\n")


def js_length(text: str) -> int:
    """The length of ``text`` as JavaScript's ``String.length`` gives it (UTF-16 code units):
    what v3 payload lengths count. Characters outside the BMP count twice."""
    return len(text.encode("utf-16-le")) // 2


def encode_packet(pkt: packet.Packet, b64: bool) -> str | bytes:
    """One packet as v3 sends it: text ``<type><data>``; binary ``<type byte><data>``, or
    ``b<type><base64>`` where the client cannot take binary (v3 > Packet, v3 > Payload)."""
    if pkt.binary:
        data = bytes(pkt.data)
        if b64:
            return f"b{pkt.packet_type}" + base64.b64encode(data).decode("ascii")
        return bytes([pkt.packet_type]) + data
    # A text packet encodes as in v4 (python-engineio's encoding: type digit, then the data
    # as a string or compact JSON); a fresh packet avoids another session's cached encoding.
    text = packet.Packet(pkt.packet_type, pkt.data).encode()
    return str(text)


def encode_text_payload(packets: list[packet.Packet]) -> str:
    """v3 > Payload: ``<length>:<packet>`` for each packet, binary ones as base64, the length
    counted in UTF-16 code units."""
    parts = []
    for pkt in packets:
        encoded = encode_packet(pkt, b64=True)
        assert isinstance(encoded, str)
        parts.append(f"{js_length(encoded)}:{encoded}")
    return "".join(parts)


def encode_binary_payload(packets: list[packet.Packet]) -> bytes:
    """v3 > Payload, XHR2: each packet as ``<0|1><length digits as bytes><255><packet>``, text
    packets as UTF-8 (their length in bytes), binary ones with their type byte."""
    out = bytearray()
    for pkt in packets:
        encoded = encode_packet(pkt, b64=False)
        if isinstance(encoded, str):
            body, mark = encoded.encode("utf-8"), STRING_MARK
        else:
            body, mark = encoded, BINARY_MARK
        out.append(mark)
        out.extend(int(digit) for digit in str(len(body)))
        out.append(LENGTH_END)
        out.extend(body)
    return bytes(out)


def jsonp_wrap(payload: str, index: int) -> str:
    """v3 > JSONP: ``___eio[<j>]("<payload>");``, the payload escaped by a JSON encoder as the
    section advises (python-engineio escapes only quotes, which breaks on backslashes)."""
    return f"___eio[{index}]({json.dumps(payload)});"


def encode_response(
    packets: list[packet.Packet], b64: bool, jsonp_index: int | None
) -> tuple[bytes, str]:
    """The body and Content-Type of a polling GET response carrying ``packets``: JSONP when
    the request has ``j``, a binary payload when there is binary to send and the client
    takes it, else a text payload."""
    if jsonp_index is not None:
        return jsonp_wrap(encode_text_payload(packets), jsonp_index).encode("utf-8"), \
            JSONP_CONTENT_TYPE
    if not b64 and any(pkt.binary for pkt in packets):
        return encode_binary_payload(packets), BINARY_CONTENT_TYPE
    return encode_text_payload(packets).encode("utf-8"), TEXT_CONTENT_TYPE


def decode_packet_v3(encoded: str | bytes) -> packet.Packet:
    """One packet a v3 client sent (in a payload or a websocket frame); raises
    :class:`InvalidPacket`. Binary packets carry their type, which must be ``message``."""
    if isinstance(encoded, (bytes, bytearray)):
        if not encoded:
            raise InvalidPacket("empty binary packet")
        if encoded[0] != packet.MESSAGE:
            raise InvalidPacket(f"binary packet of type {encoded[0]}, not a message")
        return packet.Packet(packet.MESSAGE, bytes(encoded[1:]))
    if encoded.startswith("b"):
        if encoded[1:2] != str(packet.MESSAGE):
            raise InvalidPacket(f"base64 packet of type {encoded[1:2]!r}, not a message")
        try:
            data = base64.b64decode(encoded[2:], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidPacket("binary packet is not valid base64") from None
        return packet.Packet(packet.MESSAGE, data)
    pkt = decode_packet(encoded)
    if not packet.OPEN <= pkt.packet_type <= packet.NOOP:
        raise InvalidPacket(f"no packet type {pkt.packet_type} in Engine.IO 3")
    return pkt


def decode_text_payload(body: str) -> list[packet.Packet]:
    """The packets of a v3 text payload ``<length>:<packet>...``; raises
    :class:`InvalidPacket` for anything else (an empty body included)."""
    if not body:
        raise InvalidPacket("empty payload")
    packets = []
    i, end = 0, len(body)
    while i < end:  # each pass consumes at least the length and its colon
        colon = body.find(":", i, i + MAX_LENGTH_DIGITS + 1)
        digits = body[i:colon] if colon > i else ""
        if not digits.isdigit() or not digits.isascii():
            raise InvalidPacket(f"payload length {body[i:i + MAX_LENGTH_DIGITS]!r} is no number")
        length = int(digits)
        if length == 0:
            raise InvalidPacket("empty packet in payload")
        start = j = colon + 1
        units = 0
        while units < length and j < end:  # bounded by the body's length
            units += 2 if ord(body[j]) > 0xFFFF else 1
            j += 1
        if units != length:
            raise InvalidPacket("payload shorter than its packet length")
        packets.append(decode_packet_v3(body[start:j]))
        i = j
    return packets


def decode_binary_payload(body: bytes) -> list[packet.Packet]:
    """The packets of a v3 XHR2 binary payload; raises :class:`InvalidPacket`."""
    if not body:
        raise InvalidPacket("empty payload")
    packets = []
    i, end = 0, len(body)
    while i < end:  # each pass consumes at least the mark, one digit and the 255
        mark = body[i]
        if mark not in (STRING_MARK, BINARY_MARK):
            raise InvalidPacket(f"binary payload packet starts with {mark}, not 0 or 1")
        stop = body.find(bytes([LENGTH_END]), i + 1, i + 2 + MAX_LENGTH_DIGITS)
        digits = body[i + 1:stop] if stop > i + 1 else b""
        if not digits or any(d > 9 for d in digits):
            raise InvalidPacket("binary payload length is no number")
        length = int("".join(str(d) for d in digits))
        start = stop + 1
        if length == 0 or start + length > end:
            raise InvalidPacket("binary payload shorter than its packet length")
        chunk = body[start:start + length]
        if mark == STRING_MARK:
            try:
                packets.append(decode_packet_v3(chunk.decode("utf-8")))
            except UnicodeDecodeError:
                raise InvalidPacket("text packet is not UTF-8") from None
        else:
            packets.append(decode_packet_v3(chunk))
        i = start + length
    return packets


def decode_post_body(raw: bytes, content_type: str, jsonp: bool) -> list[packet.Packet]:
    """The packets of a v3 POST body: a binary payload (sent as application/octet-stream), a
    JSONP form ``d=<payload>``, or a text payload. Raises :class:`InvalidPacket`."""
    if content_type.split(";")[0].strip().lower() == BINARY_CONTENT_TYPE:
        return decode_binary_payload(raw)
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPacket("payload is not UTF-8") from None
    if jsonp:
        # v3 > JSONP > Posting data: the payload is the form field d, with \n escaped.
        fields = parse_qs(body, keep_blank_values=True)
        if "d" not in fields:
            raise InvalidPacket("JSONP post without its d field")
        body = _ESCAPED_NEWLINE.sub(lambda m: m.group(0) if m.group(1) else "\n", fields["d"][0])
    return decode_text_payload(body)
