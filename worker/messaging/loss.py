"""What pub/sub lost on the way to this worker, counted from the senders' sequence numbers.

Every worker numbers what it publishes, one series per channel (``envelope.Sequencer``). A
receiver remembers the last number heard per (sender, channel); a jump is that many messages
published while it was not subscribed. Three cases are not losses:

- the first number heard from a sender: what it sent before is not this worker's business;
- a gap in this worker's own broadcasts (they come back to it on the shared channel, but its
  clients had them already, delivered here first): counting those made ``lost`` twice what the
  clients missed (issue 13, item 10);
- a message for this worker's channel that nobody heard there and that another worker (or the
  sender) passed on to the shared channel, ``forwarded`` with its ``orig`` sequence number: it
  arrives, before or after its gap shows.

No I/O: the caller feeds it what it heard and logs the :class:`Gap` it gets back when
``Gap.log`` says so (at most one line per ``log_every`` seconds of the injected clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .envelope import origin_of, sequence_of

LOG_EVERY = 5.0


@dataclass(frozen=True)
class Gap:
    """``missing`` messages from ``host`` on ``channel`` never arrived; ``total`` lost so far."""

    missing: int
    host: str
    channel: str
    total: int
    log: bool

    @property
    def text(self) -> str:
        """The log line for this gap."""
        return (f"lost {self.missing} message(s) from worker {self.host[:8]} on {self.channel} "
                f"(not subscribed when they were published; --redis-transport streams keeps "
                f"them); {self.total} lost so far")


class LossCounter:
    """The losses one worker (``host_id``, listening on ``own_channel`` too) has seen."""

    def __init__(self, host_id: str, own_channel: str,
                 clock: Callable[[], float] = time.monotonic,
                 log_every: float = LOG_EVERY) -> None:
        self.host_id = host_id
        self.own_channel = own_channel
        self.lost = 0
        self._clock = clock
        self._log_every = log_every
        self._last_log: float | None = None
        # The last and the first sequence number heard per (sender, channel).
        self._last: dict[tuple[str, str], int] = {}
        self._first: dict[tuple[str, str], int] = {}
        # Numbers of this worker's channel that arrived forwarded before their gap showed.
        self._recovered: dict[tuple[str, str], set[int]] = {}

    def heard(self, channel: str, data: dict[str, Any]) -> Gap | None:
        """Take in a message heard on ``channel``; the gap it reveals, if any."""
        origin = origin_of(data)
        if origin is not None and origin[1] == self.own_channel:
            self._count_recovered(origin[0], origin[2])
        sequence = sequence_of(data)
        if sequence is None or sequence[0] == self.host_id:
            return None
        return self._count_gap(sequence[0], channel, sequence[1])

    def _count_recovered(self, host: str, seq: int) -> None:
        key = (host, self.own_channel)
        last = self._last.get(key)
        if last is not None and self._first.get(key, last) < seq <= last:
            self.lost -= 1  # its gap was counted already
        else:
            self._recovered.setdefault(key, set()).add(seq)

    def _count_gap(self, host: str, channel: str, seq: int) -> Gap | None:
        key = (host, channel)
        last = self._last.get(key)
        arrived = self._arrived_forwarded(key, last, seq)
        if last is None:
            self._first[key] = self._last[key] = seq
            return None
        if seq > last:
            self._last[key] = seq
        missing = seq - last - 1 - arrived
        if missing <= 0:
            return None
        self.lost += missing
        return Gap(missing, host, channel, self.lost, self._may_log())

    def _arrived_forwarded(self, key: tuple[str, str], last: int | None, seq: int) -> int:
        """How many of the numbers between ``last`` and ``seq`` came forwarded already; forget
        the ones below ``seq`` (before the first number heard, none is counted)."""
        recovered = self._recovered.get(key)
        if not recovered:
            return 0
        arrived = sum(1 for s in recovered if last is not None and last < s < seq)
        recovered.difference_update([s for s in recovered if s < seq])
        if not recovered:
            del self._recovered[key]
        return arrived

    def _may_log(self) -> bool:
        now = self._clock()
        if self._last_log is not None and now - self._last_log < self._log_every:
            return False
        self._last_log = now
        return True
