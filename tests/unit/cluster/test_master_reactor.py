"""The master's loop machinery (cluster/reactor.py) in process: named deadlines on a fake clock,
signals turned into a queue that wakes the selector, descriptors watched and re-watched."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import time

from sioctl.cluster.reactor import MAX_WAIT, Reactor


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_named_deadlines_fire_once_in_time_order_and_a_name_moves_its_deadline() -> None:
    clock = FakeClock()
    reactor = Reactor(clock)
    fired: list[str] = []
    try:
        reactor.call_at("b", 102.0, lambda: fired.append("b"))
        reactor.call_at("a", 101.0, lambda: fired.append("a"))
        reactor.call_at("c", 103.0, lambda: fired.append("c"))
        reactor.call_at("b", 105.0, lambda: fired.append("b moved"))  # same name: moved
        reactor.cancel("c")
        assert reactor.wait_time() == 1.0
        clock.now = 104.0
        reactor.fire_due()
        assert fired == ["a"]
        clock.now = 110.0
        reactor.fire_due()
        reactor.fire_due()
        assert fired == ["a", "b moved"]
        assert reactor.deadline("b") is None
        # Nothing due: the loop sleeps at most MAX_WAIT.
        assert reactor.wait_time() == MAX_WAIT
    finally:
        reactor.close()


def test_a_deadline_may_set_itself_again() -> None:
    clock = FakeClock()
    reactor = Reactor(clock)
    runs: list[float] = []

    def again() -> None:
        runs.append(clock())
        reactor.call_at("periodic", clock() + 1.0, again)

    try:
        reactor.call_at("periodic", 100.0, again)
        for step in range(3):
            clock.now = 100.0 + step
            reactor.fire_due()
        assert runs == [100.0, 101.0, 102.0]
        assert reactor.deadline("periodic") == 103.0
    finally:
        reactor.close()


def test_signals_are_queued_and_wake_the_loop() -> None:
    reactor = Reactor()
    seen: list[int] = []
    reactor.install_signals([signal.SIGUSR1, signal.SIGUSR2])
    try:
        # With nothing else to do the loop would sleep MAX_WAIT; the signal wakes it at once.
        reactor.call_later("far", 60.0, lambda: None)
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR2)
        start = time.monotonic()
        while len(seen) < 2 and time.monotonic() - start < MAX_WAIT:
            reactor.run_once(seen.append)
        assert seen == [signal.SIGUSR1, signal.SIGUSR2]
    finally:
        reactor.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_a_watched_socket_keeps_its_callback_when_its_events_change() -> None:
    reactor = Reactor()
    a, b = socket.socketpair()
    events: list[int] = []
    try:
        reactor.watch(a, lambda sock, mask: events.append(mask))
        reactor.set_events(a, selectors.EVENT_WRITE)
        reactor.run_once(lambda signum: None)
        assert events == [selectors.EVENT_WRITE]
        reactor.unwatch(a)
        reactor.unwatch(a)  # twice is harmless
        reactor.set_events(a, selectors.EVENT_READ)  # so is changing an unwatched one
    finally:
        reactor.close()
        a.close()
        b.close()
