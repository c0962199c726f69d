"""The ping timers of one asyncio Engine.IO server's sessions, in one loop timer.

Each session's next ping was a loop timer of its own (uvloop's timer handle, a copied context
and a bound method: ~0.58 KiB per idle websocket; docs/design.md, "Memory per idle websocket",
asyncio third round). Every session of a server waits the same ``ping_interval`` from when it
schedules its ping, so the pings fall due in the order they are scheduled: :class:`PingTimers`
keeps them in a FIFO of small entries and one loop timer, armed for the head's time. A ping
still goes out at its own time; a cancelled entry lets go of its session at once and is
dropped when it reaches the head.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from typing import Any


class PingEntry:
    """One session's pending ping (what :meth:`cancel` drops, as a timer handle's)."""

    __slots__ = ("due", "session")

    def __init__(self, due: float, session: Any) -> None:
        self.due = due
        self.session: Any = session  # None once cancelled

    def cancel(self) -> None:
        self.session = None


class PingTimers:
    """The pending pings of one server's sessions, due in the order they were scheduled; each
    due session's ``_ping_now()`` is called from the loop at its time."""

    __slots__ = ("_loop", "_entries", "_handle", "_context")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._entries: deque[PingEntry] = deque()
        self._handle: asyncio.TimerHandle | None = None
        # The pings run in an empty context, not in that of the request that armed the timer.
        self._context = contextvars.Context()

    @classmethod
    def of(cls, server: Any) -> PingTimers:
        """``server``'s (made on its first ping, on the running loop; a server served on
        another loop, as tests do, gets new ones)."""
        timers: PingTimers | None = getattr(server, "_sioctl_ping_timers", None)
        if timers is None or timers._loop is not asyncio.get_running_loop():
            timers = server._sioctl_ping_timers = cls()
        return timers

    def call_at(self, due: float, session: Any) -> Any:
        """Call ``session._ping_now()`` at ``due``; returns what cancels it. A ``due`` before
        the last one scheduled (a server whose ping interval changed) gets a timer of its
        own."""
        entries = self._entries
        if entries and due < entries[-1].due:
            return self._loop.call_at(due, session._ping_now)
        entry = PingEntry(due, session)
        entries.append(entry)
        if self._handle is None:
            self._arm(due)
        return entry

    def _arm(self, due: float) -> None:
        self._handle = self._loop.call_at(due, self._fire, context=self._context)

    def _fire(self) -> None:
        self._handle = None
        entries = self._entries
        now = self._loop.time()
        while entries and entries[0].due <= now:
            entry = entries.popleft()
            session, entry.session = entry.session, None
            if session is not None:
                session._ping_now()  # never raises (it logs)
        while entries and entries[0].session is None:
            entries.popleft()  # cancelled: nothing to arm for
        if entries:
            self._arm(entries[0].due)
