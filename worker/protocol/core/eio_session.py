"""One Engine.IO session's transport state as a state machine (core; the shell is
:class:`sioctl.worker.protocol.engineio_rules.ConformantSocket`).

:class:`SessionRules` knows which polling requests are active, whether the client sent CLOSE,
whether an upgrade is under way (polls wait for it), and when the next ping is due. It is told
what happens (a GET begins, a frame arrives, the timer fires) with clock readings passed in,
and answers what to do; the shell waits, schedules and sends. python-engineio's own session
flags (``upgrading``, ``upgraded``, ``closing``, ``closed``, ``last_ping``) stay on its session:
the shell passes them in where a decision needs them.
"""

from __future__ import annotations

from typing import Any

from engineio import packet

from .eio_rules import DuplicateRequest

# How long a polling request that comes during an upgrade (its websocket open) waits for the
# upgrade packet: the reference server answers such a poll with a noop at its next check of the
# upgrade, every 100 ms; a client that sent the upgrade packet first gets the 400 of an upgraded
# session instead, however soon after it polls.
UPGRADE_POLL_WAIT = 0.1


class SessionRules:
    """The transport rules' state of one session (Transports > HTTP long-polling, Protocol >
    Upgrade, Protocol > Heartbeat). Small on purpose: one per open session."""

    __slots__ = ("get_active", "post_active", "closed_by_client", "upgrade_pending", "ping_due")

    def __init__(self) -> None:
        self.get_active = False
        self.post_active = False
        self.closed_by_client = False
        # An upgrade's websocket is open and its UPGRADE packet not read yet: polls wait.
        self.upgrade_pending = False
        # When the next ping goes out (the clock the shell passes in), None between cycles.
        self.ping_due: float | None = None

    # ------------------------------------------------------------------ polling requests
    def begin_get(self) -> None:
        """A polling GET begins. Transports > HTTP long-polling > Receiving data: "a client
        MUST NOT have more than one active GET request. Should it happen, the server MUST
        return an HTTP 400 error status and close the session." Raises
        :class:`DuplicateRequest` (the shell closes the session)."""
        if self.get_active:
            raise DuplicateRequest("a second concurrent GET request")
        self.get_active = True

    def end_get(self, packets: list[Any]) -> list[Any]:
        """The GET has its packets; returns what to answer. The client's CLOSE packet ended
        the poll with nothing to send: a noop, as the reference server answers, rather than an
        empty (undecodable) payload."""
        self.get_active = False
        if packets == [] and self.closed_by_client:
            return [packet.Packet(packet.NOOP)]
        return packets

    def abort_get(self) -> None:
        """The GET ended without packets (an error, a closed session)."""
        self.get_active = False

    def begin_post(self) -> None:
        """A polling POST begins. Transports > HTTP long-polling > Sending data: "a client
        MUST NOT have more than one active POST request." Raises :class:`DuplicateRequest`."""
        if self.post_active:
            raise DuplicateRequest("a second concurrent POST request")
        self.post_active = True

    def end_post(self) -> None:
        self.post_active = False

    def received(self, packet_type: int) -> None:
        """A packet from the client is about to be handled (CLOSE is remembered)."""
        if packet_type == packet.CLOSE:
            self.closed_by_client = True

    # ------------------------------------------------------------------ upgrade
    def websocket_opens(self, connected: bool, upgraded: bool) -> bool:
        """A websocket opens on the session; True when it is an upgrade (python-engineio's
        test: the session is connected and not upgraded yet), and polls now wait for it to
        settle (the shell creates its event then)."""
        self.upgrade_pending = connected and not upgraded
        return self.upgrade_pending

    def upgrade_settles(self) -> bool:
        """The upgrade under way has ended, completed or not; True when one was under way
        (the shell wakes the waiting polls)."""
        was, self.upgrade_pending = self.upgrade_pending, False
        return was

    # ------------------------------------------------------------------ heartbeat
    def schedule_ping(self, cycle_done: bool, now: float, interval: float) -> float | None:
        """When the next ping is due, or None when no cycle starts. python-engineio's rule:
        one wait cycle at a time; a cycle starts only when the previous one has completed
        (``cycle_done``: its ``last_ping`` is set; the shell then clears it)."""
        if not cycle_done:
            return None
        self.ping_due = now + interval
        return self.ping_due

    def ping_fires(self, closing: bool) -> bool:
        """The ping's time has come: True when it must be sent (the session is not closing or
        closed; the shell then sets ``last_ping`` and queues the PING)."""
        self.ping_due = None
        return not closing

    def cancel_ping(self) -> bool:
        """The session closes: True when a ping was scheduled (the shell cancels its timer, which
        would otherwise hold the session until it fires)."""
        was, self.ping_due = self.ping_due is not None, None
        return was


def advertised_ping_interval(ping_interval: float, grace_period: float) -> int:
    """The ping interval the OPEN packet advertises, in whole milliseconds, grace period
    included: rounded, where python-engineio truncates before scaling (0.3 s became 0 ms and JS
    clients then drop with "ping timeout")."""
    return round((ping_interval + grace_period) * 1000)


def advertises_ping_interval(item: Any) -> bool:
    """Whether ``item`` (something put on a session's queue) is the OPEN packet, whose
    ``pingInterval`` is to be :func:`advertised_ping_interval`. (A test, not the rewrite, so
    the shell computes the value only for that one packet of a session.)"""
    return (
        isinstance(item, packet.Packet)
        and item.packet_type == packet.OPEN
        and isinstance(item.data, dict)
        and "pingInterval" in item.data
    )
