"""Socket.IO v5 packet rules as decisions over plain values (core; the shell is
``worker/protocol/socketio_rules.py``, the state of the CONNECT-first rule
:mod:`.sio_connect`).

Each rule names the section of the Socket.IO v5 specification (socketio/socket.io-protocol,
README) it implements. A packet the specification says the receiver must close the connection
for raises :class:`InvalidPacket` with the reason; the shell closes the Engine.IO session.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from socketio import packet

from . import nesting

# A client never sends CONNECT_ERROR: only the server refuses a namespace.
CLIENT_TYPES = frozenset({
    packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK,
    packet.BINARY_EVENT, packet.BINARY_ACK,
})
BINARY_TYPES = frozenset({packet.BINARY_EVENT, packet.BINARY_ACK})
# The reference server's message for an unknown namespace (the official test suite checks it).
INVALID_NAMESPACE = "Invalid namespace"


class InvalidPacket(ValueError):
    """A Socket.IO packet the receiver must close the connection for."""


def packet_problem(pkt: Any) -> str | None:
    """What makes a decoded client packet invalid, or None."""
    if pkt.packet_type not in CLIENT_TYPES:
        return f"packet type {pkt.packet_type!r} may not be sent by a client"
    if pkt.namespace is not None and not isinstance(pkt.namespace, str):
        return "namespace is not a string"
    if pkt.packet_type == packet.CONNECT and pkt.data is not None \
            and not isinstance(pkt.data, dict):
        # Connection to a namespace: the optional payload is an object ({"token": "123"}).
        return "CONNECT payload is not an object"
    if pkt.packet_type in (packet.EVENT, packet.BINARY_EVENT):
        # Sending and receiving data: "The payload is mandatory and MUST be a non-empty array.
        # If that's not the case, then the receiver MUST close the connection." Its first item
        # is the event name.
        if not isinstance(pkt.data, list) or not pkt.data:
            return "EVENT payload is not a non-empty array"
        if not isinstance(pkt.data[0], str):
            return "EVENT name is not a string"
    if pkt.packet_type in (packet.ACK, packet.BINARY_ACK):
        # Acknowledgement: "The payload is mandatory and MUST be an array (possibly empty)",
        # and it answers the event ID it carries.
        if not isinstance(pkt.data, list):
            return "ACK payload is not an array"
        if pkt.id is None:
            return "ACK without an id"
    if pkt.packet_type in BINARY_TYPES and getattr(pkt, "attachment_count", 1) < 1:
        # Packet encoding > Format: binary packets carry "<# of binary attachments>-".
        return "binary packet without attachments"
    return None


def too_deep(pkt: Any, encoded: str | bytes, exempt_events: Container[str] = ()) -> bool:
    """Whether an event's or ack's arguments nest deeper than nesting.MAX_DEPTH (python-socketio
    would recurse over them when they are sent on). Events named in ``exempt_events`` (the
    server's ``events_checking_depth``) are let through: their handler refuses deep data
    itself."""
    if pkt.packet_type not in (packet.EVENT, packet.ACK, *BINARY_TYPES):
        return False
    if not nesting.text_may_nest_deeper(encoded):
        return False
    if pkt.packet_type in (packet.EVENT, packet.BINARY_EVENT) \
            and pkt.data[0] in exempt_events:
        return False
    return nesting.deeper_than(pkt.data)


def attachment_problem(pkt: Any) -> str | None:
    """What is wrong with the attachments a binary packet announces, or None.

    Packet encoding > Format: the header announces "<# of binary attachments>-" and its data
    holds one ``{"_placeholder": true, "num": n}`` per attachment, numbered from 0 (the JS and
    Python encoders both number them so). The announced count must be exactly the placeholders'
    numbers 0..count-1: a count that nothing refers to would only make the server wait for, and
    hold, that many frames (issue 13: 1,000,000 announced, 300 MB held). As each placeholder
    takes at least 29 bytes of the header, which is one message of at most
    ``max_http_buffer_size``, this also caps the count (about 34,000 at the 1 MB default)."""
    count = getattr(pkt, "attachment_count", 0)
    nums: set[Any] = set()
    stack = [pkt.data]
    while stack:  # a loop, not recursion: the header may be nested deep
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if item.get("_placeholder") and "num" in item:
                # python-socketio's own test for a placeholder; it indexes a list with num,
                # so 0.0 or "0" would fail there (and True would pass as 1).
                num = item["num"]
                nums.add(num if type(num) is int else repr(num))
            else:
                stack.extend(item.values())
    if nums != set(range(count)):
        return (f"binary packet's attachment count does not match its placeholders "
                f"(announced {count}, referenced {len(nums)})")
    return None



def decode_client_packet(data: Any, packet_class: type,
                         exempt_events: Container[str] = ()) -> Any:
    """The client's packet, decoded with ``packet_class`` (the server's) and checked; raises
    :class:`InvalidPacket` (the JSON is decoded by ``packet_class.json``: ``engineio.json``,
    whose decoder is made once, :mod:`.json_codec`, unless the server was given ``json=``).
    With python-socketio's own codec, a binary packet's attachments
    are checked too and its header's size noted as ``sioctl_bytes`` (it counts toward the
    packet's budget, :func:`count_attachment`). The CONNECT-first rule is
    :meth:`.sio_connect.ConnectState.packet_arrives`'s."""
    plain = packet_class is packet.Packet
    if isinstance(data, bytes) and plain:
        raise InvalidPacket("binary attachment without a binary packet")
    if not isinstance(data, (str, bytes)):
        raise InvalidPacket("Engine.IO message is not a Socket.IO packet")
    try:
        pkt = packet_class(encoded_packet=data)
    except Exception as exc:  # the decoder raises ValueError, TypeError, JSON errors...
        raise InvalidPacket(f"undecodable Socket.IO packet ({exc})") from None
    problem = packet_problem(pkt)
    if problem:
        raise InvalidPacket(problem)
    if too_deep(pkt, data, exempt_events):
        raise InvalidPacket(f"arguments nested deeper than {nesting.MAX_DEPTH} levels")
    if pkt.packet_type in BINARY_TYPES and plain:
        problem = attachment_problem(pkt)
        if problem:
            raise InvalidPacket(problem)
        pkt.sioctl_bytes = len(data)
    return pkt


def count_attachment(pending: Any, data: Any, packet_class: type, limit: int) -> int:
    """The size a binary packet (``pending``, its header's size in ``sioctl_bytes``) reaches
    with the attachment ``data``, which the shell then records; raises :class:`InvalidPacket`
    when ``data`` is no attachment or the size passes ``limit`` (``max_http_buffer_size``, the
    most one polling POST may carry, so the most a packet can be over polling).

    Packet encoding > Format: a binary packet is followed by its attachments, each an
    Engine.IO binary message; text in their place is a broken packet."""
    if not isinstance(data, bytes) and packet_class is packet.Packet:
        raise InvalidPacket("text packet where a binary attachment was due")
    size = getattr(pending, "sioctl_bytes", 0) + len(data)
    if size > limit:
        raise InvalidPacket(
            f"binary packet larger than max_http_buffer_size ({size} > {limit} bytes)")
    return int(size)


def namespace_served(namespace: str, handlers: Container[str],
                     namespace_handlers: Container[str], namespaces: Any) -> bool:
    """Whether python-socketio would accept a CONNECT to ``namespace``, given the server's
    ``handlers``, ``namespace_handlers`` and ``namespaces`` setting. Tracks upstream:
    python-socketio's test at the top of ``Server._handle_connect``."""
    return (
        namespace in handlers
        or namespace in namespace_handlers
        or namespaces == "*"
        or namespace in (namespaces or ())
    )


def connect_error_data() -> dict[str, str]:
    """The payload of the CONNECT_ERROR for a namespace nobody serves: Connection to a
    namespace, a refused connection's payload is ``{"message": ...}`` (python-socketio sends a
    bare string for an unknown one)."""
    return {"message": INVALID_NAMESPACE}
