"""The presence records' pieces that need no Redis: worker ids and telling a dead worker from
a live one on this node (real processes), and the in-memory registry's peers sets."""

from __future__ import annotations

import subprocess
import sys

from sioctl.worker.gateway.memory_registry import MemoryRegistry
from sioctl.worker.gateway.registry_presence import WorkerId, running


def test_a_worker_id_reads_back_and_names_this_process() -> None:
    here = WorkerId.here()
    assert WorkerId.parse(str(here)) == here
    assert running(here)
    assert WorkerId.parse("no-pid-here") is None


def test_a_process_that_exited_is_not_running_even_if_its_pid_comes_back() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive = WorkerId(WorkerId.here().node, child.pid, "")
        # The start time is part of the id: the same pid with another start time is another
        # process (a reused pid).
        with open(f"/proc/{child.pid}/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
        assert running(WorkerId(alive.node, child.pid, start))
        assert not running(WorkerId(alive.node, child.pid, start + "1"))
        child.kill()
        child.wait(5)
        assert not running(WorkerId(alive.node, child.pid, start))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)


def test_memory_peers_are_both_ways_and_expire() -> None:
    now = [0.0]
    registry = MemoryRegistry(ttl=10, clock=lambda: now[0])
    registry.add_peers("a", "b")
    registry.add_peers("c", "a")
    assert (registry.peers_of("a"), registry.peers_of("b")) == (["b", "c"], ["a"])
    now[0] = 11.0
    assert registry.peers_of("a") == [] and registry.dead_workers() == []
