"""The master's supervision rules as pure functions of times and counts: no process, no clock.

The supervisor (workers) and the Redis supervisor (the embedded redis-server) ask these when
something dies, when a worker has been silent, and when a rolling restart moves on. Every
function takes ``now`` (or a duration) as an argument, so tests drive them on a fake clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

# A process that dies sooner than this after it became ready (or before it was ready) counts
# towards crash-loop backoff; one that lived longer died of old age and restarts at once.
QUICK_DEATH = 5.0
# Restart delays after the second quick death in a row double from BACKOFF_FIRST up to BACKOFF_MAX.
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 15.0
# A worker silent for this many heartbeat intervals (two heartbeats late) is stalled: it is handed
# nothing until it answers again.
STALL_INTERVALS = 3
# The shortest wait between two heartbeat checks.
CHECK_GAP = 0.05


def is_quick_death(ready: bool, ready_at: float, now: float) -> bool:
    """Whether a death at ``now`` counts towards crash-loop backoff: the process never became
    ready, or it died less than QUICK_DEATH seconds after ``ready_at`` (its start for a worker,
    its first answer for redis-server)."""
    return not ready or now - ready_at < QUICK_DEATH


def count_quick_deaths(previous: int, quick: bool) -> int:
    """Quick deaths in a row after this death: one more if it was quick, else back to zero."""
    return previous + 1 if quick else 0


def restart_delay(quick_deaths: int) -> float:
    """Seconds to wait before the next start after ``quick_deaths`` quick deaths in a row.

    The first quick death restarts at once (one crash is not a loop); from the second on the
    delay doubles: 0.25, 0.5, 1, 2 … up to BACKOFF_MAX.
    """
    if quick_deaths <= 1:
        return 0.0
    return min(BACKOFF_FIRST * 2 ** (quick_deaths - 2), BACKOFF_MAX)


def after_death(quick_deaths: int, ready: bool, ready_at: float, now: float) -> tuple[int, float]:
    """What follows a death at ``now`` of a process that became ready at ``ready_at`` (or never,
    ``ready`` False) after ``quick_deaths`` quick deaths in a row: the new count of quick deaths
    in a row, and the seconds to wait before starting it again."""
    count = count_quick_deaths(quick_deaths, is_quick_death(ready, ready_at, now))
    return count, restart_delay(count)


def stall_after(timeout: float, heartbeat_interval: float) -> float:
    """Seconds of silence after which a ready worker is handed nothing more.

    STALL_INTERVALS heartbeats, but never later than half of ``timeout`` (so a stalled worker
    stops receiving well before the heartbeat check kills it; 0 turns that check off) and never
    within 1.5 intervals of the last heartbeat (a healthy worker would flap).
    """
    after = STALL_INTERVALS * heartbeat_interval
    if timeout > 0:
        after = min(after, timeout / 2)
    return max(after, 1.5 * heartbeat_interval)


def is_stalled(last_heard: float, now: float, after: float) -> bool:
    """Whether a worker last heard from at ``last_heard`` is stalled at ``now``."""
    return now - last_heard > after


def is_hung(last_heard: float, now: float, timeout: float) -> bool:
    """Whether a worker silent since ``last_heard`` is to be killed at ``now`` (``timeout`` 0
    turns the check off, as in gunicorn)."""
    return timeout > 0 and now - last_heard > timeout


def next_heartbeat_check(
    stall_watch: Iterable[float], hang_watch: Iterable[float], now: float, after: float,
    timeout: float, most: float,
) -> float:
    """When the heartbeat check has something to decide next: the first moment a watched worker
    can be found stalled or hung, at the latest ``now + most``, and never sooner than
    ``now + CHECK_GAP`` (a dead worker not yet reaped must not spin the loop).

    ``stall_watch`` holds the last-heard times of workers that can still be found stalled,
    ``hang_watch`` those of workers that can be found hung. A heartbeat that arrives meanwhile
    only makes the check find nothing to do.
    """
    due = [last + after for last in stall_watch]
    if timeout > 0:
        due += [last + timeout for last in hang_watch]
    # Just past the moment: the verdicts compare strictly ("more than").
    return max(min([*due, now + most]) + 0.001, now + CHECK_GAP)


def rolling_order(slot_count: int) -> deque[int]:
    """The slots a rolling restart replaces, in order: one at a time, lowest first."""
    return deque(range(slot_count))


def next_to_replace(remaining: deque[int], replaceable: Callable[[int], bool]) -> int | None:
    """Take the next slot to replace off ``remaining``; None when the restart is done.

    Slots that are not replaceable when their turn comes (no worker: it died and gets a fresh
    one anyway; or a replacement already starting) are skipped.
    """
    while remaining:
        index = remaining.popleft()
        if replaceable(index):
            return index
    return None
