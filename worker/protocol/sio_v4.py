"""Socket.IO protocol v4 (what socket.io-client@2 speaks) for the sessions of EIO=3 clients.

python-socketio speaks protocol v5. A Socket.IO v2 client always comes over Engine.IO 3, so
the sessions :mod:`.eio3` opens get the v4 differences here (socketio/socket.io,
docs/socket.io-protocol/v4.md; sections named "v4 > ..."), and everything else is the same
server, handlers, rooms and manager as for v5 clients. Event, ack, disconnect and binary
packets encode identically in v4 and v5; only the connection handshake differs:

- the client is connected to the default namespace as soon as the Engine.IO session opens,
  without sending CONNECT (v4 > Connection to the default namespace);
- the server answers a CONNECT with a bare ``CONNECT`` (``40``, ``40/chat,``): no ``sid``
  payload, the client derives its id from the Engine.IO sid;
- a client's CONNECT carries no payload; a namespace may carry a query string instead
  (``0/chat?token=abc,``), which the reference server hands over as the auth payload;
- a refused connection is ``ERROR`` (the same type number as CONNECT_ERROR) whose payload is
  the message string, or the error's data when it has some, as the Socket.IO 2 server sent it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from socketio import packet

from .eio3 import Eio3Session
from .socketio_rules import namespace_served


def is_v2_client(server: Any, eio_sid: str) -> bool:
    """Whether the Engine.IO session ``eio_sid`` is one of a Socket.IO v2 client (EIO=3)."""
    return isinstance(server.eio.sockets.get(eio_sid), Eio3Session)


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


class SocketIOv4Mixin:
    """``socketio.Server`` mixin: protocol v4 for the sessions of Socket.IO v2 clients.

    Sits before :class:`.socketio_rules.ConformantServerMixin` (whose ``_sioctl_state``
    records which sessions have connected a namespace).
    """

    _sioctl_state: Any

    def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        result = super()._handle_eio_connect(eio_sid, environ)  # type: ignore[misc]
        if is_v2_client(self, eio_sid):
            # v4 > Connection to the default namespace: implicit, no CONNECT from the client;
            # it counts as the session's first CONNECT (it may connect other namespaces next).
            server: Any = self
            if namespace_served(server, "/"):
                self._sioctl_state.connected.add(eio_sid)
                server._handle_connect(eio_sid, "/", None)
                if server.manager.sid_from_eio_sid(eio_sid, "/") is None:
                    # Refused: as with the reference server, the connect timeout closes the
                    # session unless the client connects another namespace first.
                    self._sioctl_state.connected.discard(eio_sid)
        return result

    def _handle_eio_message(self, eio_sid: str, data: Any) -> Any:
        if isinstance(data, str) and is_v2_client(self, eio_sid):
            data = incoming_connect(data)
        return super()._handle_eio_message(eio_sid, data)  # type: ignore[misc]

    def _send_packet(self, eio_sid: str, pkt: Any) -> Any:
        if is_v2_client(self, eio_sid):
            pkt = outgoing(pkt, self.packet_class)  # type: ignore[attr-defined]
        return super()._send_packet(eio_sid, pkt)  # type: ignore[misc]
