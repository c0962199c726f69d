"""The time limit on an asyncio websocket's reads: :class:`ReadDeadline` per websocket, checked
by its own loop timer or by a server's :class:`DeadlineSweep` (one timer for all of them).
Used by :mod:`.async_websocket` and :mod:`.async_ws_reader`."""

from __future__ import annotations

import asyncio
from typing import Any


class ReadDeadline:
    """Ends a websocket read that waits longer than ``span`` seconds, as ``asyncio.wait_for``
    around each read did, with one timer per websocket instead of one per read, or none of
    its own when a :class:`DeadlineSweep` checks it.

    The reader calls :meth:`waiting` before and :meth:`done` after each read. The check (the
    timer's, or the sweep's) cancels the reading task if the read under way has lasted
    ``span``; the timer otherwise moves itself to when that read (or the next) could first run
    out. A read that ran out raises ``CancelledError`` in the reader, and :meth:`expired` says
    so.
    """

    __slots__ = ("_span", "_loop", "_task", "_since", "_expired", "_handle", "_sweep")

    def __init__(self, span: float, sweep: DeadlineSweep | None = None) -> None:
        self._span = span
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._since: float | None = None  # when the read under way began
        self._expired = False
        self._sweep = sweep
        self._handle: asyncio.TimerHandle | None = None
        if sweep is not None:
            sweep.add(self)
        else:
            self._handle = self._loop.call_at(self._loop.time() + span, self._check)

    def waiting(self) -> None:
        """A read begins."""
        self._since = self._loop.time()

    def done(self) -> None:
        """The read has returned."""
        self._since = None

    def expired(self) -> bool:
        """Whether the check cancelled the reader (then the cancellation is taken back: it was
        ours, not the caller's)."""
        if not self._expired:
            return False
        uncancel = getattr(self._task, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            uncancel()
        return True

    def stop(self) -> None:
        """No more reads: drop the timer (or leave the sweep)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()
        if self._sweep is not None:
            self._sweep.discard(self)

    def ran_out(self, now: float) -> bool:
        """Cancel the reader if the read under way began ``span`` ago or more; True then."""
        since = self._since
        if since is None or now - since < self._span:
            return False
        self._expired = True
        if self._task is not None:
            self._task.cancel()
        return True

    def _check(self) -> None:
        now = self._loop.time()
        self._handle = None
        if self.ran_out(now):
            return
        since = self._since
        self._handle = self._loop.call_at((since if since is not None else now) + self._span,
                                          self._check)


class DeadlineSweep:
    """One loop timer for the :class:`ReadDeadline` of every websocket a server reads: each
    idle websocket's own timer was a timer handle, a copied context and a bound method (~0.5
    KiB; docs/design.md, "Memory per idle websocket", asyncio third round). The sweep runs
    every ``span / SWEEPS`` seconds while it watches a deadline, so a read is ended between
    ``span`` and ``span * (1 + 1 / SWEEPS)`` after it began (python-engineio's ``wait_for``:
    at ``span``; the deadline is a backstop for a client gone silent, after the ping timeout)."""

    SWEEPS = 8

    __slots__ = ("_period", "_loop", "_watched", "_handle")

    def __init__(self, span: float) -> None:
        self._period = span / self.SWEEPS
        self._loop = asyncio.get_running_loop()
        self._watched: set[ReadDeadline] = set()
        self._handle: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, server: Any, span: float) -> DeadlineSweep:
        """The sweep of ``server``'s websockets (made on its first websocket, on the running
        loop; a server served on another loop, as tests do, gets a new one)."""
        sweep: DeadlineSweep | None = getattr(server, "_sioctl_deadline_sweep", None)
        if sweep is None or sweep._loop is not asyncio.get_running_loop() \
                or sweep._period != span / cls.SWEEPS:
            sweep = server._sioctl_deadline_sweep = cls(span)
        return sweep

    def add(self, deadline: ReadDeadline) -> None:
        """Check ``deadline`` from now on."""
        self._watched.add(deadline)
        if self._handle is None:
            self._handle = self._loop.call_later(self._period, self._run)

    def discard(self, deadline: ReadDeadline) -> None:
        """Check ``deadline`` no more."""
        self._watched.discard(deadline)

    def _run(self) -> None:
        self._handle = None
        now = self._loop.time()
        ended = [deadline for deadline in self._watched if deadline.ran_out(now)]
        self._watched.difference_update(ended)
        if self._watched:
            self._handle = self._loop.call_later(self._period, self._run)
