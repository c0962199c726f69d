"""What the benchmark reads from /proc: CPU seconds and memory of processes, and the machine's
busy time. Every reader returns 0 for a process that is gone (it ended between two samples)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    return stat.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) that ``pid`` used so far."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # fields[0] is the state (field 3 of stat(5)); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pss_kib(pid: int) -> int:
    """Proportional set size of ``pid`` in KiB: its private memory plus its share of pages it
    shares (forked nginx workers share their master's pages; RSS would count them twice)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it (children, grandchildren...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None or fields[0] in ("Z", "X"):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" if it says none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class Snapshot:
    """CPU counters at one moment: per role of server process, this process, the machine."""

    at: float
    roles: dict[str, float]
    own: float
    machine: tuple[int, int]


def snapshot(roles: Mapping[str, Iterable[int]]) -> Snapshot:
    """The CPU seconds of each role's processes ({role: pids}), of this process and of the
    machine, now."""
    times = os.times()
    return Snapshot(
        at=time.perf_counter(),
        roles={role: sum(cpu_seconds(pid) for pid in pids) for role, pids in roles.items()},
        own=times.user + times.system,
        machine=machine_ticks(),
    )


@dataclass
class Usage:
    """CPU spent between two snapshots."""

    seconds: float
    roles: dict[str, float]
    own: float
    machine_busy: float

    @property
    def server(self) -> float:
        """CPU seconds of all server-side processes."""
        return sum(self.roles.values())

    @property
    def own_load(self) -> float:
        """The load generator's CPU as a share of one core."""
        return self.own / self.seconds if self.seconds > 0 else 0.0


def usage(before: Snapshot, after: Snapshot) -> Usage:
    """What was spent from ``before`` to ``after``."""
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1]
    return Usage(
        seconds=after.at - before.at,
        roles={role: after.roles[role] - before.roles.get(role, 0.0) for role in after.roles},
        own=after.own - before.own,
        machine_busy=busy / total if total else 0.0,
    )
