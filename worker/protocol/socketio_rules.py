"""Socket.IO v5 rules on python-socketio's sync Server (shell; the rules are
:mod:`.core.sio_rules`, the CONNECT-first state :mod:`.core.sio_connect`).

Packets are validated before python-socketio dispatches them; a packet the specification says
the receiver must close the connection for closes the Engine.IO session (the client sees its
transport end), and the log says why once.
"""

from __future__ import annotations

import time
from typing import Any

import socketio
from socketio import packet

from . import green_handlers
from .core import sio_rules
from .core.sio_connect import ConnectState
from .core.sio_rules import InvalidPacket


class ConformantServerMixin:
    """``socketio.Server`` mixin: packet validation, the CONNECT-first rule, the connect
    timeout and the ``CONNECT_ERROR`` shape for unknown namespaces.

    State lives in ``_sioctl_state`` (a :class:`.core.sio_connect.ConnectState`, set by
    :func:`adopt`), since the mixin is installed by changing the class of a server that
    already exists.
    """

    _sioctl_state: ConnectState

    def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        if self._sioctl_state.session_opens(eio_sid, time.monotonic()):
            server: Any = self
            server.start_background_task(self._sioctl_sweep_unconnected)
        return super()._handle_eio_connect(eio_sid, environ)  # type: ignore[misc]

    def _sioctl_sweep_unconnected(self) -> None:
        """Close the sessions that have not connected to any namespace ``connect_timeout`` s
        after opening (the reference server's ``connectTimeout``).

        One green thread for the server, looking every second (or half the timeout) at the few
        sessions still waiting: a sleeping green thread per session cost ~15 KiB each for as
        long as the timeout, connected or not (docs/benchmarks.md, idle connections)."""
        server: Any = self
        state = self._sioctl_state
        while True:
            server.sleep(state.sweep_pause())
            for eio_sid in state.overdue(time.monotonic(), server.environ):
                self._sioctl_close(eio_sid, state.overdue_reason())

    def _handle_eio_message(self, eio_sid: str, data: Any) -> Any:
        server: Any = self
        pending = server._binary_packet.get(eio_sid)
        if pending is not None:
            try:
                pending.sioctl_bytes = sio_rules.count_attachment(
                    pending, data, server.packet_class, server.eio.max_http_buffer_size)
            except InvalidPacket as exc:
                # Forget what was held at once; the session may take a moment to go.
                server._binary_packet.pop(eio_sid, None)
                self._sioctl_close(eio_sid, str(exc))
                return None
            return super()._handle_eio_message(eio_sid, data)  # type: ignore[misc]
        try:
            pkt = sio_rules.decode_client_packet(
                data, server.packet_class, getattr(server, "events_checking_depth", ()))
            self._sioctl_state.packet_arrives(eio_sid, pkt.packet_type)
        except InvalidPacket as exc:
            self._sioctl_close(eio_sid, str(exc))
            return None
        self._sioctl_dispatch(eio_sid, pkt)
        return None

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
            self._sioctl_state.events_received += 1
            server._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind == packet.ACK:
            server._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif not server.manager.sid_from_eio_sid(eio_sid, pkt.namespace or "/"):
            # A binary packet for a namespace the client is not connected to: python-socketio
            # raises here; it is dropped like the plain packets of such a client.
            server.logger.warning("binary packet from %s for a namespace it has not joined",
                                  eio_sid)
        else:
            if kind == packet.BINARY_EVENT:
                self._sioctl_state.events_received += 1
            server._binary_packet[eio_sid] = pkt  # BINARY_EVENT / BINARY_ACK: attachments next

    def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> Any:
        """python-socketio's ``_handle_event``; under eventlet with ``async_handlers`` the
        handler's green thread starts at once (``green_handlers.run_now``) instead of being
        spawned for the hub to start later.

        Tracks upstream: python-socketio's ``Server._handle_event`` (the log lines, the
        connected check, ``_handle_event_internal`` and its arguments)."""
        server: Any = self
        if not server.async_handlers or server.async_mode != "eventlet":
            return super()._handle_event(eio_sid, namespace, id, data)  # type: ignore[misc]
        namespace = namespace or "/"
        sid = server.manager.sid_from_eio_sid(eio_sid, namespace)
        server.logger.info('received event "%s" from %s [%s]', data[0], sid, namespace)
        if not server.manager.is_connected(sid, namespace):
            server.logger.warning("%s is not connected to namespace %s", sid, namespace)
            return None
        green_handlers.run_now(server._handle_event_internal, server, sid, eio_sid, data,
                               namespace, id)
        return None

    def emit(self, *args: Any, **kwargs: Any) -> Any:
        """python-socketio's emit, counted for the metrics (send() and call() emit too)."""
        self._sioctl_state.emits += 1
        return super().emit(*args, **kwargs)  # type: ignore[misc]

    def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        """One recipient of an emit (python-socketio's manager hands every recipient the same
        Engine.IO packet): a v4 session writes its shared websocket frame (encoded once)
        straight to its socket when it can (``ConformantSocket.write_shared``); any other
        session (EIO=3, or an engine.io session sioctl did not make) as python-socketio
        does."""
        server: Any = self
        session = server.eio.sockets.get(eio_sid)
        write_shared = getattr(session, "write_shared", None)
        if write_shared is None or session.closed:  # a closed one: python-engineio's warning
            super()._send_eio_packet(eio_sid, eio_pkt)  # type: ignore[misc]
        else:
            write_shared(eio_pkt)

    def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> Any:
        server: Any = self
        name = namespace or "/"
        if not namespace_served(server, name):
            server._send_packet(eio_sid, server.packet_class(
                packet.CONNECT_ERROR, data=sio_rules.connect_error_data(), namespace=name))
            return None
        return super()._handle_connect(eio_sid, namespace, data)  # type: ignore[misc]

    def _handle_eio_disconnect(self, eio_sid: str, *args: Any) -> Any:
        self._sioctl_state.session_closes(eio_sid)
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


def namespace_served(server: socketio.Server, namespace: str) -> bool:
    """Whether python-socketio would accept a CONNECT to ``namespace`` (its own test, on the
    server's handlers and ``namespaces``)."""
    return sio_rules.namespace_served(
        namespace, server.handlers, server.namespace_handlers, server.namespaces)


def adopt(server: socketio.Server, connect_timeout: float) -> None:
    """Set up the rules' state on ``server`` (whose class has :class:`ConformantServerMixin`);
    ``connect_timeout`` 0 disables the deadline for the first CONNECT. Again on the same
    server, only the timeout changes."""
    state = getattr(server, "_sioctl_state", None)
    if isinstance(state, ConnectState):
        state.connect_timeout = connect_timeout
        return
    server._sioctl_state = ConnectState(connect_timeout)
    # python-socketio registered its engine.io handlers as bound methods when it was built;
    # point those at the methods of the new class. A handler someone else put there (the admin
    # UI's, which calls the server's method itself) stays.
    handlers = server.eio.handlers
    for event, name in (("connect", "_handle_eio_connect"), ("message", "_handle_eio_message"),
                        ("disconnect", "_handle_eio_disconnect")):
        if getattr(handlers.get(event), "__self__", None) is server:
            handlers[event] = getattr(server, name)
