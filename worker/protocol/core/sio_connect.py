"""The CONNECT-first rule and the connect timeout as a state machine (core; the shell is
:class:`sioctl.worker.protocol.socketio_rules.ConformantServerMixin`, which keeps one
:class:`ConnectState` per server as ``_sioctl_state``).

Connection to a namespace: "At the beginning of a Socket.IO session, the client MUST send a
CONNECT packet", and "If the server does not receive a CONNECT packet first, then it MUST close
the connection immediately". The reference server also closes a session that has sent no
CONNECT within ``connectTimeout``. Clock readings are passed in (monotonic seconds); the shell
runs the sweep that asks :meth:`ConnectState.overdue`.
"""

from __future__ import annotations

from collections.abc import Container

from socketio import packet

from .sio_rules import InvalidPacket


class ConnectState:
    """Per-server state of the rules: which sessions sent a CONNECT, and which still must by
    when. ``connect_timeout`` 0 disables the deadline (the CONNECT-first rule stays)."""

    def __init__(self, connect_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.connected: set[str] = set()
        # Sessions with no CONNECT yet -> when they are closed for it (monotonic seconds).
        self.awaiting: dict[str, float] = {}
        # Whether the shell's sweep runs (one for the server, started with its first session).
        self.sweeping = False
        # For the metrics: Socket.IO events received from clients (EVENT and BINARY_EVENT
        # packets) and the server's emit() calls, since the worker started.
        self.events_received = 0
        self.emits = 0

    def session_opens(self, eio_sid: str, now: float) -> bool:
        """An Engine.IO session opened at ``now``; its CONNECT is due ``connect_timeout``
        later. True when the shell must start its sweep now (the first such session)."""
        if self.connect_timeout <= 0:
            return False
        self.awaiting[eio_sid] = now + self.connect_timeout
        if self.sweeping:
            return False
        self.sweeping = True
        return True

    def packet_arrives(self, eio_sid: str, packet_type: int) -> None:
        """A valid packet of ``packet_type`` came from the session: a CONNECT counts (its
        deadline is gone); any other before one raises :class:`InvalidPacket`."""
        if packet_type == packet.CONNECT:
            self.namespace_connected(eio_sid)
        elif eio_sid not in self.connected:
            raise InvalidPacket("first packet is not a CONNECT")

    def namespace_connected(self, eio_sid: str) -> None:
        """The session sent a CONNECT: it may send anything now, and has no deadline."""
        self.connected.add(eio_sid)
        self.awaiting.pop(eio_sid, None)

    def implicit_connect(self, eio_sid: str) -> None:
        """A v2 client is connected to ``/`` without a CONNECT (Socket.IO v4); it counts as
        the session's first CONNECT. Its deadline stays until the sweep sees it connected, so
        that a refusal (:meth:`connect_refused`) still times out."""
        self.connected.add(eio_sid)

    def connect_refused(self, eio_sid: str) -> None:
        """A v2 client's implicit CONNECT was refused: as with the reference server, the
        connect timeout closes the session unless the client connects another namespace
        first."""
        self.connected.discard(eio_sid)

    def session_closes(self, eio_sid: str) -> None:
        """The Engine.IO session has gone: forget it."""
        self.connected.discard(eio_sid)
        self.awaiting.pop(eio_sid, None)

    def sweep_pause(self) -> float:
        """How long the sweep sleeps between two looks: every second, or half the timeout."""
        return min(1.0, self.connect_timeout / 2) if self.connect_timeout > 0 else 1.0

    def overdue(self, now: float, open_sessions: Container[str]) -> list[str]:
        """The sessions to close at ``now`` for having sent no CONNECT in time; they, and
        those that have connected or are no longer in ``open_sessions``, are forgotten."""
        late = []
        for eio_sid, deadline in list(self.awaiting.items()):
            if eio_sid in self.connected or eio_sid not in open_sessions:
                self.awaiting.pop(eio_sid, None)
            elif deadline <= now:
                self.awaiting.pop(eio_sid, None)
                late.append(eio_sid)
        return late

    def overdue_reason(self) -> str:
        """Why an overdue session is closed (the log line says it)."""
        return f"no CONNECT packet within {self.connect_timeout:g} s"
