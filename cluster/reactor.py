"""The master's loop machinery: one selector, named deadlines and queued signals.

Callbacks run from :meth:`Reactor.run_once` only, one at a time. A signal handler does nothing
but append the signal to a queue; ``signal.set_wakeup_fd`` wakes the selector, and the loop hands
the queued signals to its caller between events — as gunicorn's arbiter turns signals into a
queue. Timers are named (``respawn slot 1``, ``stop timeout``…): setting a name again moves its
deadline, so whatever is due next is always one entry per job, never a list to rescan.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

# The longest the loop sleeps with nothing due: a bound, not a tick (nothing waits for it).
MAX_WAIT = 5.0

EventCallback = Callable[[Any, int], None]


class Reactor:
    """A selector with named deadlines and a signal queue."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.selector = selectors.DefaultSelector()
        self.deadlines: dict[str, tuple[float, Callable[[], None]]] = {}
        self.signals: deque[int] = deque()
        self._wakeup: tuple[int, int] | None = None
        self._handled: tuple[int, ...] = ()

    # -------------------------------------------------------------------------- descriptors

    def watch(self, fileobj: Any, callback: EventCallback,
              events: int = selectors.EVENT_READ) -> None:
        """Call ``callback(fileobj, mask)`` whenever ``fileobj`` is ready for ``events``."""
        self.selector.register(fileobj, events, callback)

    def unwatch(self, fileobj: Any) -> None:
        """Stop watching ``fileobj`` (nothing happens if it was not watched or is closed)."""
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fileobj)

    def set_events(self, fileobj: Any, events: int) -> None:
        """Watch a watched ``fileobj`` for ``events`` instead, with the same callback."""
        with contextlib.suppress(KeyError, ValueError):
            key = self.selector.get_key(fileobj)
            if key.events != events:
                self.selector.modify(fileobj, events, key.data)

    # ---------------------------------------------------------------------------- deadlines

    def call_at(self, name: str, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback()`` once at ``when`` (on :attr:`clock`); replaces a deadline of the
        same name."""
        self.deadlines[name] = (when, callback)

    def call_later(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self.call_at(name, self.clock() + delay, callback)

    def cancel(self, name: str) -> None:
        self.deadlines.pop(name, None)

    def deadline(self, name: str) -> float | None:
        """When the deadline ``name`` is due, or None if it is not set."""
        entry = self.deadlines.get(name)
        return entry[0] if entry is not None else None

    def fire_due(self) -> None:
        """Run every deadline that is due, earliest first; each runs once (a callback may set
        its name again for a later time)."""
        now = self.clock()
        due = sorted((when, name) for name, (when, _) in self.deadlines.items() if when <= now)
        for when, name in due:
            entry = self.deadlines.get(name)
            if entry is not None and entry[0] == when:
                del self.deadlines[name]
                entry[1]()

    def wait_time(self) -> float:
        """How long the next select may sleep: 0 with signals queued, else until the earliest
        deadline, at most MAX_WAIT."""
        if self.signals:
            return 0.0
        if not self.deadlines:
            return MAX_WAIT
        earliest = min(when for when, _ in self.deadlines.values())
        return min(MAX_WAIT, max(0.0, earliest - self.clock()))

    # ------------------------------------------------------------------------------ signals

    def install_signals(self, signums: Iterable[int]) -> None:
        """Queue ``signums`` when they arrive and wake the selector for them."""
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wakeup = (read_end, write_end)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        self._handled = tuple(signums)
        for signum in self._handled:
            signal.signal(signum, self._queue_signal)
        self.watch(read_end, self._drain_wakeup)

    def restore_signals(self) -> None:
        if self._wakeup is None:
            return
        signal.set_wakeup_fd(-1)
        for signum in self._handled:
            signal.signal(signum, signal.SIG_DFL)
        self.unwatch(self._wakeup[0])
        for fd in self._wakeup:
            os.close(fd)
        self._wakeup = None

    def _queue_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def _drain_wakeup(self, fd: int, mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(fd, 4096):
                pass

    # --------------------------------------------------------------------------------- loop

    def run_once(self, on_signal: Callable[[int], None], most: float = MAX_WAIT) -> None:
        """Wait for the next event, deadline or signal (at most ``most`` seconds); handle what
        is ready, then the queued signals (``on_signal(signum)`` each, in arrival order), then
        what is due."""
        for key, mask in self.selector.select(min(most, self.wait_time())):
            key.data(key.fileobj, mask)
        while self.signals:
            on_signal(self.signals.popleft())
        self.fire_due()

    def close(self) -> None:
        self.restore_signals()
        self.selector.close()
