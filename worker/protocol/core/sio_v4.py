"""Socket.IO protocol v4 (what socket.io-client@2 speaks) as rewrites of packets (core; the
shell is ``worker/protocol/sio_v4.py``, which applies them to the sessions of EIO=3 clients).

Sections named "v4 > ..." are socketio/socket.io, docs/socket.io-protocol/v4.md.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from socketio import packet


def outgoing(pkt: Any, packet_class: Any) -> Any:
    """``pkt`` (a v5 packet python-socketio is about to send) as a v4 client expects it."""
    if pkt.packet_type == packet.CONNECT and pkt.data is not None:
        # v4 > Connection to a namespace: the server answers with a CONNECT packet, no payload.
        return packet_class(packet.CONNECT, namespace=pkt.namespace)
    if pkt.packet_type == packet.CONNECT_ERROR:
        # v4 > Packet types > ERROR: the payload is what the client's "error" handler gets; the
        # Socket.IO 2 server sent the error's data if any, else its message as a string.
        data = pkt.data
        if isinstance(data, dict):
            data = data.get("data") if data.get("data") is not None else data.get("message")
        return packet_class(packet.CONNECT_ERROR, data=data, namespace=pkt.namespace)
    if pkt.packet_type == packet.DISCONNECT and pkt.data is not None:
        # v4 > DISCONNECT has no payload; socket.io-client@2's parser drops a packet with one.
        return packet_class(packet.DISCONNECT, namespace=pkt.namespace)
    return pkt


def incoming_connect(data: str) -> str:
    """A v4 CONNECT packet rewritten as v5: the namespace's query string becomes the auth
    payload (``0/chat?token=abc,`` -> ``0/chat,{"token":"abc"}``), as the reference server
    does for v2 clients. Any other packet is returned as it is."""
    if not data.startswith(str(packet.CONNECT) + "/"):
        return data
    namespace, _, _rest = data[1:].partition(",")
    path, question, query = namespace.partition("?")
    if not question:
        return data
    auth = dict(parse_qsl(query, keep_blank_values=True))
    encoded: str = packet.Packet(packet.CONNECT, data=auth, namespace=path).encode()
    return encoded
