"""The master's supervision rules (cluster/policy.py) on a fake clock, in process.

These replace end-to-end checks that could only wait for real time to pass (a worker living
5.5 s twice, a cluster watched for 2.5 s): the rules are pure functions of times and counts, so a
fake clock covers them in milliseconds. What needs real processes (a crash loop backing off and
recovering, a stopped worker's connections reaching its replacement, the embedded Redis coming
back) stays end to end in test_lifecycle.py, test_failures.py and test_hardening_supervise.py.
"""

from __future__ import annotations

from collections import deque

from sioctl.cluster import policy

HEARTBEAT = 1.0


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def deaths(lives: list[tuple[float, bool]], clock: FakeClock) -> list[float]:
    """Run one slot through deaths after each (seconds lived, became ready) on ``clock``, the way
    the supervisor does; returns the delay before each respawn."""
    quick_deaths, delays = 0, []
    for lived, ready in lives:
        started = clock()
        clock.advance(lived)
        quick_deaths, delay = policy.after_death(quick_deaths, ready, started, clock())
        delays.append(delay)
        clock.advance(delay)
    return delays


def test_workers_that_lived_long_do_not_count_as_a_crash_loop() -> None:
    # Two workers that each served for 5.5 s (longer than QUICK_DEATH) then died: both are
    # respawned at once, however many times it happens.
    clock = FakeClock()
    assert deaths([(5.5, True)] * 5, clock) == [0.0] * 5


def test_quick_deaths_back_off_doubling_up_to_the_cap() -> None:
    clock = FakeClock()
    delays = deaths([(0.5, False)] * 9, clock)
    # One crash is not a loop; from the second on the delay doubles, up to BACKOFF_MAX.
    assert delays == [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]


def test_a_worker_that_dies_soon_after_ready_counts_as_quick() -> None:
    clock = FakeClock()
    assert deaths([(1.0, True), (4.9, True), (0.1, True)], clock) == [0.0, 0.25, 0.5]


def test_one_long_life_ends_the_crash_loop() -> None:
    clock = FakeClock()
    delays = deaths([(0.1, False)] * 4 + [(60.0, True)] + [(0.1, False)] * 2, clock)
    assert delays == [0.0, 0.25, 0.5, 1.0, 0.0, 0.0, 0.25]


def test_a_worker_that_never_became_ready_is_quick_however_long_it_took() -> None:
    clock = FakeClock()
    assert deaths([(30.0, False), (30.0, False)], clock) == [0.0, 0.25]


def test_redis_server_follows_the_same_backoff() -> None:
    # redis-server's "ready" is its first answer (up_at); dying while starting is quick.
    count, delay = policy.after_death(0, ready=True, ready_at=0.0, now=3.0)
    assert (count, delay) == (1, 0.0)
    count, delay = policy.after_death(count, ready=False, ready_at=0.0, now=3.1)
    assert (count, delay) == (2, 0.25)
    count, delay = policy.after_death(count, ready=True, ready_at=3.2, now=20.0)
    assert (count, delay) == (0, 0.0)


def test_timeout_zero_turns_the_heartbeat_check_off() -> None:
    # A zero --timeout used to kill every worker on every heartbeat tick.
    clock = FakeClock()
    last = clock()
    for _ in range(5):
        assert not policy.is_hung(last, clock.advance(1.0), timeout=0)
    assert not policy.is_hung(last, clock.advance(3600.0), timeout=0)
    # Stalls are still noticed: a silent worker is handed nothing, it is only never killed.
    after = policy.stall_after(0, HEARTBEAT)
    assert after == 3.0
    assert policy.is_stalled(last, clock(), after)
    # And no check is planned for the hang that cannot happen.
    when = policy.next_heartbeat_check([], [clock()], clock(), after, 0, most=HEARTBEAT)
    assert when == clock() + HEARTBEAT + 0.001


def test_a_silent_worker_is_hung_only_past_the_timeout() -> None:
    clock = FakeClock()
    last = clock()
    assert not policy.is_hung(last, clock.advance(10.0), timeout=10)
    assert policy.is_hung(last, clock.advance(0.01), timeout=10)


def test_stall_threshold_follows_heartbeats_and_timeout() -> None:
    # Three heartbeats by default; at most half of --timeout; never within 1.5 heartbeats.
    assert policy.stall_after(30, HEARTBEAT) == 3.0
    assert policy.stall_after(4, HEARTBEAT) == 2.0
    assert policy.stall_after(2, HEARTBEAT) == 1.5
    clock = FakeClock()
    last = clock()
    after = policy.stall_after(4, HEARTBEAT)
    assert not policy.is_stalled(last, clock.advance(2.0), after)
    assert policy.is_stalled(last, clock.advance(0.01), after)


def test_the_next_heartbeat_check_is_when_a_verdict_can_change() -> None:
    clock = FakeClock()
    now = clock()
    after = policy.stall_after(10, HEARTBEAT)  # 3 s
    # A worker last heard 2.5 s ago can stall in 0.5 s; another can be hung in 10 s.
    when = policy.next_heartbeat_check([now - 2.5, now], [now - 2.5, now], now, after, 10,
                                       most=HEARTBEAT)
    assert when == now + 0.5 + 0.001
    # Nothing due within a heartbeat: look again after one anyway.
    assert policy.next_heartbeat_check([now], [now], now, after, 10, most=HEARTBEAT) == (
        now + HEARTBEAT + 0.001)
    # Something overdue (a dead worker not reaped yet) does not make the loop spin.
    assert policy.next_heartbeat_check([], [now - 60], now, after, 10, most=HEARTBEAT) == (
        now + policy.CHECK_GAP)


def test_rolling_restart_goes_slot_by_slot_skipping_empty_and_busy_slots() -> None:
    remaining = policy.rolling_order(4)
    assert list(remaining) == [0, 1, 2, 3]
    has_worker = {0: True, 1: False, 2: True, 3: True}
    replacing = {3}
    replaced = []
    while (index := policy.next_to_replace(
            remaining, lambda i: has_worker[i] and i not in replacing)) is not None:
        replaced.append(index)
    # Slot 1 has no worker (it gets a fresh one anyway), slot 3 a replacement already starting.
    assert replaced == [0, 2]
    assert remaining == deque()
