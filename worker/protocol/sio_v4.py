"""Socket.IO protocol v4 (what socket.io-client@2 speaks) for the sessions of EIO=3 clients
(shell; the packet rewrites are :mod:`.core.sio_v4`'s).

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

from .core.sio_v4 import incoming_connect, outgoing
from .eio3 import Eio3Session
from .socketio_rules import namespace_served


def is_v2_client(server: Any, eio_sid: str) -> bool:
    """Whether the Engine.IO session ``eio_sid`` is one of a Socket.IO v2 client (EIO=3)."""
    return isinstance(server.eio.sockets.get(eio_sid), Eio3Session)


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
                self._sioctl_state.implicit_connect(eio_sid)
                server._handle_connect(eio_sid, "/", None)
                if server.manager.sid_from_eio_sid(eio_sid, "/") is None:
                    self._sioctl_state.connect_refused(eio_sid)
        return result

    def _handle_eio_message(self, eio_sid: str, data: Any) -> Any:
        if isinstance(data, str) and is_v2_client(self, eio_sid):
            data = incoming_connect(data)
        return super()._handle_eio_message(eio_sid, data)  # type: ignore[misc]

    def _send_packet(self, eio_sid: str, pkt: Any) -> Any:
        if is_v2_client(self, eio_sid):
            pkt = outgoing(pkt, self.packet_class)  # type: ignore[attr-defined]
        return super()._send_packet(eio_sid, pkt)  # type: ignore[misc]
