"""Socket.IO v5 rules that python-socketio does not enforce, added around it.

Each rule names the section of the Socket.IO v5 specification (socketio/socket.io-protocol,
README) it implements. Packets are validated before python-socketio dispatches them; a packet
the specification says the receiver must close the connection for closes the Engine.IO session
(the client sees its transport end), and the log says why once.
"""

from __future__ import annotations

import time
from typing import Any

import socketio
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


def too_deep(server: Any, pkt: Any, encoded: str | bytes) -> bool:
    """Whether an event's or ack's arguments nest deeper than nesting.MAX_DEPTH (python-socketio
    would recurse over them when they are sent on). Events named in the server's
    ``events_checking_depth`` are let through: their handler refuses deep data itself."""
    if pkt.packet_type not in (packet.EVENT, packet.ACK, *BINARY_TYPES):
        return False
    if not nesting.text_may_nest_deeper(encoded):
        return False
    if pkt.packet_type in (packet.EVENT, packet.BINARY_EVENT) \
            and pkt.data[0] in getattr(server, "events_checking_depth", ()):
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


class ConformantServerMixin:
    """``socketio.Server`` mixin: packet validation, the CONNECT-first rule, the connect
    timeout and the ``CONNECT_ERROR`` shape for unknown namespaces.

    State lives in ``_sioctl_state`` (set by :func:`adopt`), since the mixin is installed by
    changing the class of a server that already exists.
    """

    _sioctl_state: ProtocolState

    def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        state = self._sioctl_state
        if state.connect_timeout > 0:
            state.awaiting[eio_sid] = time.monotonic() + state.connect_timeout
            if not state.sweeping:
                state.sweeping = True
                server: Any = self
                server.start_background_task(self._sioctl_sweep_unconnected)
        return super()._handle_eio_connect(eio_sid, environ)  # type: ignore[misc]

    def _sioctl_sweep_unconnected(self) -> None:
        """Close the sessions that have not connected to any namespace ``connect_timeout`` s
        after opening (the reference server's ``connectTimeout``; Connection to a namespace: "At
        the beginning of a Socket.IO session, the client MUST send a CONNECT packet").

        One green thread for the server, looking every second (or half the timeout) at the few
        sessions still waiting: a sleeping green thread per session cost ~15 KiB each for as
        long as the timeout, connected or not (docs/benchmarks.md, idle connections)."""
        server: Any = self
        state = self._sioctl_state
        while True:
            server.sleep(min(1.0, state.connect_timeout / 2) if state.connect_timeout > 0 else 1.0)
            now = time.monotonic()
            for eio_sid, deadline in list(state.awaiting.items()):
                if eio_sid in state.connected or eio_sid not in server.environ:
                    state.awaiting.pop(eio_sid, None)
                elif deadline <= now:
                    state.awaiting.pop(eio_sid, None)
                    self._sioctl_close(
                        eio_sid, f"no CONNECT packet within {state.connect_timeout:g} s")

    def _handle_eio_message(self, eio_sid: str, data: Any) -> Any:
        server: Any = self
        if eio_sid in server._binary_packet:
            # Packet encoding > Format: a binary packet is followed by its attachments, each an
            # Engine.IO binary message; text in their place is a broken packet.
            if not isinstance(data, bytes) and server.packet_class is packet.Packet:
                self._sioctl_close(eio_sid, "text packet where a binary attachment was due")
                return None
            if not self._sioctl_within_budget(eio_sid, data):
                return None
            return super()._handle_eio_message(eio_sid, data)  # type: ignore[misc]
        try:
            pkt = self._sioctl_decode(eio_sid, data)
        except InvalidPacket as exc:
            self._sioctl_close(eio_sid, str(exc))
            return None
        self._sioctl_dispatch(eio_sid, pkt)
        return None

    def _sioctl_decode(self, eio_sid: str, data: Any) -> Any:
        """The client's packet, decoded and checked; raises :class:`InvalidPacket`."""
        server: Any = self
        if isinstance(data, bytes) and server.packet_class is packet.Packet:
            raise InvalidPacket("binary attachment without a binary packet")
        if not isinstance(data, (str, bytes)):
            raise InvalidPacket("Engine.IO message is not a Socket.IO packet")
        try:
            pkt = server.packet_class(encoded_packet=data)
        except Exception as exc:  # the decoder raises ValueError, TypeError, JSON errors...
            raise InvalidPacket(f"undecodable Socket.IO packet ({exc})") from None
        problem = packet_problem(pkt)
        if problem:
            raise InvalidPacket(problem)
        if too_deep(server, pkt, data):
            raise InvalidPacket(f"arguments nested deeper than {nesting.MAX_DEPTH} levels")
        if pkt.packet_type in BINARY_TYPES and server.packet_class is packet.Packet:
            problem = attachment_problem(pkt)
            if problem:
                raise InvalidPacket(problem)
            pkt.sioctl_bytes = len(data)  # the header counts toward the packet's budget
        connected = self._sioctl_state.connected
        if pkt.packet_type == packet.CONNECT:
            connected.add(eio_sid)
            self._sioctl_state.awaiting.pop(eio_sid, None)
        elif eio_sid not in connected:
            # Connection to a namespace: "If the server does not receive a CONNECT packet
            # first, then it MUST close the connection immediately."
            raise InvalidPacket("first packet is not a CONNECT")
        return pkt

    def _sioctl_within_budget(self, eio_sid: str, data: Any) -> bool:
        """Count one attachment toward its packet's size; past ``max_http_buffer_size`` (the
        most one polling POST may carry, so the most a packet can be over polling) drop the
        packet and close the session. False when closed."""
        server: Any = self
        pending = server._binary_packet[eio_sid]
        limit = server.eio.max_http_buffer_size
        size = getattr(pending, "sioctl_bytes", 0) + len(data)
        if size > limit:
            # Forget what was held at once; the session may take a moment to go.
            server._binary_packet.pop(eio_sid, None)
            self._sioctl_close(eio_sid, f"binary packet larger than max_http_buffer_size "
                                        f"({size} > {limit} bytes)")
            return False
        pending.sioctl_bytes = size
        return True

    def _sioctl_dispatch(self, eio_sid: str, pkt: Any) -> None:
        """Hand a checked packet to python-socketio's handler for its type.

        Tracks upstream: python-socketio's ``Server._handle_eio_message`` after its decode line
        (one handler per packet type, with these arguments; a binary packet parked in
        ``_binary_packet`` until its attachments come). A packet type or handler signature that
        changes there must change here. Not a super() call because that decodes the packet
        again (4.5 us for a small event, 38 us for 2.4 KB of JSON); the one deliberate
        difference is a binary packet for a namespace the client has not joined."""
        server: Any = self
        kind = pkt.packet_type
        if kind == packet.CONNECT:
            server._handle_connect(eio_sid, pkt.namespace, pkt.data)
        elif kind == packet.DISCONNECT:
            server._handle_disconnect(eio_sid, pkt.namespace, server.reason.CLIENT_DISCONNECT)
        elif kind == packet.EVENT:
            server._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind == packet.ACK:
            server._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif not server.manager.sid_from_eio_sid(eio_sid, pkt.namespace or "/"):
            # A binary packet for a namespace the client is not connected to: python-socketio
            # raises here; it is dropped like the plain packets of such a client.
            server.logger.warning("binary packet from %s for a namespace it has not joined",
                                  eio_sid)
        else:
            server._binary_packet[eio_sid] = pkt  # BINARY_EVENT / BINARY_ACK: attachments next

    def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> Any:
        server: Any = self
        name = namespace or "/"
        if not namespace_served(server, name):
            # Connection to a namespace: a refused connection gets a CONNECT_ERROR whose payload
            # is {"message": ...}; python-socketio sends a bare string for an unknown one.
            server._send_packet(eio_sid, server.packet_class(
                packet.CONNECT_ERROR, data={"message": INVALID_NAMESPACE}, namespace=name))
            return None
        return super()._handle_connect(eio_sid, namespace, data)  # type: ignore[misc]

    def _handle_eio_disconnect(self, eio_sid: str, *args: Any) -> Any:
        self._sioctl_state.connected.discard(eio_sid)
        self._sioctl_state.awaiting.pop(eio_sid, None)
        return super()._handle_eio_disconnect(eio_sid, *args)  # type: ignore[misc]

    def _sioctl_close(self, eio_sid: str, why: str) -> None:
        """Close the Engine.IO session now; the client sees its transport end.

        Not ``eio.disconnect()``: that waits until a polling client has read the CLOSE packet,
        and this runs inside the request that delivered the bad packet.
        """
        server: Any = self
        server.eio._log_error_once(
            f"closing session {eio_sid}: {why}", f"sioctl-invalid-sio-{why.split(' (')[0]}"
        )
        session = server.eio.sockets.get(eio_sid)
        if session is not None and not session.closed:
            session.close(wait=False, abort=False, reason=server.eio.reason.TRANSPORT_ERROR)


class ProtocolState:
    """Per-server state of the rules: which sessions sent a CONNECT, and which still must."""

    def __init__(self, connect_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.connected: set[str] = set()
        # Sessions with no CONNECT yet -> when they are closed for it (monotonic seconds).
        self.awaiting: dict[str, float] = {}
        self.sweeping = False


def namespace_served(server: socketio.Server, namespace: str) -> bool:
    """Whether python-socketio would accept a CONNECT to ``namespace`` (its own test)."""
    namespaces = server.namespaces
    return (
        namespace in server.handlers
        or namespace in server.namespace_handlers
        or namespaces == "*"
        or namespace in (namespaces or ())
    )


def adopt(server: socketio.Server, connect_timeout: float) -> None:
    """Set up the rules' state on ``server`` (whose class has :class:`ConformantServerMixin`);
    ``connect_timeout`` 0 disables the deadline for the first CONNECT. Again on the same
    server, only the timeout changes."""
    state = getattr(server, "_sioctl_state", None)
    if isinstance(state, ProtocolState):
        state.connect_timeout = connect_timeout
        return
    server._sioctl_state = ProtocolState(connect_timeout)
    # python-socketio registered its engine.io handlers as bound methods when it was built;
    # point those at the methods of the new class. A handler someone else put there (the admin
    # UI's, which calls the server's method itself) stays.
    handlers = server.eio.handlers
    for event, name in (("connect", "_handle_eio_connect"), ("message", "_handle_eio_message"),
                        ("disconnect", "_handle_eio_disconnect")):
        if getattr(handlers.get(event), "__self__", None) is server:
            handlers[event] = getattr(server, name)
