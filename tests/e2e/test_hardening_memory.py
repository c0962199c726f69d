"""Issue 13, item 14: a worker lets go of what its sessions held once they disconnect.

After rounds of 10k websockets, worker RSS stayed far above its baseline. Three things of ours
kept closed sessions alive after their clients had gone (tests/bench/memory_rounds.py
measures the memory; docs/design.md, "Memory after mass disconnects"):

- the hub timer of a session's next ping held the session (its queue, events, websocket) for
  up to ``ping_interval`` (25 s by default) after the close;
- eventlet.wsgi's per-connection handler and its last environ form a reference cycle (the
  environ's ``eventlet.set_idle`` closure, and ours), and so did our Connection and its state
  list, so every finished connection (its green socket, buffers, environ, websocket) waited
  for a full pass of the cyclic garbage collector;
- python-engineio's sweep for ping timeouts held a copy of the sessions dict for a whole
  sweep (up to ``ping_timeout``).

What stays is the allocator's: glibc keeps freed heap pages, which the worker hands back
with ``malloc_trim(0)`` after a large drop in sessions (``HeapTrimmer``, tested here as a
rule and through its log line).

These tests disconnect rounds of a few hundred websockets from a real one-worker cluster and
ask the worker (SIGUSR2, sioctl.worker.memory) what it still holds: the per-session objects and
structures must be gone at once, without any garbage collection. They count objects; RSS
figures are the benchmark's.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from sioctl.worker import memory
from tests.support.clients import open_session, reset
from tests.support.cluster import Cluster

SOCKETS = 150
ROUNDS = 3
DUMP_TIMEOUT = 15.0
DUMP_MARKER = "WARNING memory "


def worker_figures(cluster: Cluster) -> dict[str, Any]:
    """The worker's memory figures: SIGUSR2 makes it log them as one JSON line."""
    pid = cluster.worker_pids()[0]
    start = len(cluster.log_text())
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + DUMP_TIMEOUT
    while time.monotonic() < deadline:
        for line in cluster.log_text()[start:].splitlines():
            if f"pid {pid}]" in line and DUMP_MARKER in line:
                return dict(json.loads(line.split(DUMP_MARKER, 1)[1]))
        time.sleep(0.1)
    cluster.fail(f"worker {pid} logged no memory figures within {DUMP_TIMEOUT:g}s")
    raise AssertionError("unreachable")


def wait_idle(cluster: Cluster) -> None:
    """Until the worker reports no session and no connection (its heartbeat, once a second)."""
    cluster.wait_for(
        lambda s: all(slot["sessions"] == 0 and slot["connections"] == 0
                      for slot in s["slots"]),
        timeout=30.0, what="no session and no connection left")


@pytest.fixture
def cluster(start_cluster: Callable[..., Cluster]) -> Cluster:
    # One worker (its sessions all in one process), joined to Redis as in production; it
    # trims its heap after a drop of 100 sessions (1000 by default).
    return start_cluster(app="tests.apps.chat:sio", workers=1,
                         env={memory.TRIM_ENV: "100"})


def test_disconnected_sessions_leave_nothing_behind(cluster: Cluster) -> None:
    before = worker_figures(cluster)
    for number in range(ROUNDS):
        sockets = [open_session(cluster.port, f"127.0.{number + 1}.{i % 250 + 2}")
                   for i in range(SOCKETS)]
        # The heartbeat that tells the master also feeds the heap trimmer: it has seen them all.
        cluster.wait_for(lambda s: s["slots"][0]["sessions"] == SOCKETS, timeout=10.0,
                         what=f"{SOCKETS} sessions reported")
        held = worker_figures(cluster)
        assert held["structures"]["eio.sockets open"] == SOCKETS
        assert held["session_objects"]["ConformantSocket"] == SOCKETS
        # Half leave with a websocket close, half vanish (TCP reset).
        for i, ws in enumerate(sockets):
            if i % 2:
                ws.close(timeout=1.0)
            else:
                reset(ws)
        del sockets
        wait_idle(cluster)
        after = worker_figures(cluster)
        left = {name: count for name, count in after["structures"].items()
                if count and name != "hub timers"}
        assert left == {}, f"round {number + 1}: per-session structures not empty: {left}"
        # No collection has run for these (the dump counts before anything else): what the
        # sessions held was freed when they closed, not when the collector came by.
        objects = after["session_objects"]
        assert objects["ConformantSocket"] == 0, objects
        assert objects["TimedProtocol"] == 0, objects
        assert objects["HttpProtocol"] == 0, objects
        assert objects["RFC6455WebSocket"] == 0, objects
        assert objects["Input"] == 0 and objects["_BoundedInput"] == 0, objects
        # The master's channel and Redis connections are green sockets too (the manager's
        # pool may have opened a few more meanwhile); the clients' must all be gone.
        assert objects["GreenSocket"] <= before["session_objects"]["GreenSocket"] + 10, objects
    # After a drop of 150 sessions (once it stopped falling, at most once per 10 s, and not
    # when the next round's clients came first) the worker gave its free heap back.
    deadline = time.monotonic() + 10.0
    while "heap trimmed" not in cluster.log_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    if "sessions fell from 150 to 0: heap trimmed" not in cluster.log_text():
        # The whole log (an assert would cut it short): which trims happened, at what counts.
        cluster.fail("no 'sessions fell from 150 to 0: heap trimmed' in the log")


def test_dump_reports_the_heap() -> None:
    """The figures a dump carries besides the counts (this process: no server needed)."""
    assert memory.rss_kib() > 0
    split = memory.rss_by_mapping()
    assert split.get("files", 0) > 0
    arenas = memory.pymalloc_arenas()
    assert arenas["arenas"] > 0 and arenas["used_bytes"] > 0
    if memory.trim_minimum():  # glibc
        assert set(memory.heap_kib()) == {"mapped", "in_use", "free"}
        assert memory.malloc_trim()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_heap_trimmer_trims_once_a_large_drop_has_settled() -> None:
    clock = FakeClock()
    trims: list[float] = []
    trimmer = memory.HeapTrimmer(drop=0.5, minimum=1000, interval=10.0,
                                 trim=lambda: trims.append(clock.now) or True, clock=clock)

    def feed(*counts: int) -> None:
        for count in counts:
            clock.now += 1.0
            trimmer.check(count)

    feed(0, 2000, 4000, 4000)
    feed(3500, 2500)            # a drop, but not by half
    assert trims == []
    feed(1000, 200)             # halved and more, but still falling fast
    assert trims == []
    feed(150)                   # settled: trim once
    assert trims == [clock.now]
    feed(150, 100, 0, 0)        # no new large drop since the trim
    assert len(trims) == 1
    clock.now += 10.0
    feed(3000, 3000, 0)         # connected again and all gone
    assert len(trims) == 1      # still falling (3000 in one step)
    feed(0)
    assert len(trims) == 2
    feed(3000, 0, 0)            # within the interval of the last trim: wait
    assert len(trims) == 2
    clock.now += 10.0
    feed(0)
    assert len(trims) == 3


def test_heap_trimmer_ignores_small_workers() -> None:
    """A worker that never held ``minimum`` sessions never trims (nothing worth giving back)."""
    trims: list[int] = []
    trimmer = memory.HeapTrimmer(minimum=1000, trim=lambda: trims.append(1) or True)
    for count in (0, 800, 900, 0, 0, 500, 0, 0):
        trimmer.check(count)
    assert trims == []


def test_trim_threshold_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    if not memory.trim_minimum():
        pytest.skip("the C library is not glibc")
    monkeypatch.setenv(memory.TRIM_ENV, "0")
    assert memory.trim_minimum() == 0
    monkeypatch.setenv(memory.TRIM_ENV, "250")
    assert memory.trim_minimum() == 250
    monkeypatch.setenv(memory.TRIM_ENV, "many")
    assert memory.trim_minimum() == memory.TRIM_MINIMUM
