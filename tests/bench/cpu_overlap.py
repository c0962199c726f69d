"""How much work this machine's CPUs do when all are busy, against one CPU alone.

Two vCPUs of a virtual machine are not always two independent cores: when they are SMT
siblings (hyper-threads of one physical core) a busy process on one slows a process on the
other, and both busy together do ~1.3× one CPU's work instead of 2×. A benchmark figure that
one saturated process sets at 2 workers (while the other CPU holds the rest of the system) is
then bounded by that process's speed with the other CPU busy, which can be below its speed
with 1 worker. This module measures that, so that the reports can say it:

    python tests/bench/cpu_overlap.py [--rounds N] [--window SECONDS] [--json]

One child process per CPU of ``os.sched_getaffinity(0)``, each pinned to its CPU
(``os.sched_setaffinity``), counts iterations of a pure-Python loop over short windows. Each
round runs every CPU's child alone (the others wait idle), then all of them at once (the
order turns round every other round). A CPU's speed on a shared virtual machine also moves
over time by itself (on this one a vCPU runs at ~55 % of its best for a second or two, with
or without its sibling busy), so the figures are paired within a round, where the windows are
a fraction of a second apart, and the median over the rounds is kept: a slow spell of one CPU
then does not read as overlap, nor one round's transient load as the rule. The whole
measurement is bounded (``BUDGET`` seconds of windows, plus the children's start).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import IO

# Seconds of measuring windows in all (rounds × (one window per CPU alone + one together)):
# the window shrinks on a machine with many CPUs so that the whole stays near this.
BUDGET = 2.4
ROUNDS = 8
WINDOW = 0.1
MIN_WINDOW = 0.05
# Loop iterations between two looks at the clock (~1 ms of work at ~20M iterations/s).
CHUNK = 20_000
# Delay from the parent's command to the window's start: lets every child read its command
# before the window opens, so that "together" windows really overlap.
LEAD = 0.01


@dataclass(frozen=True)
class CpuOverlap:
    """The measurement: per round, each CPU's rate alone and with every CPU busy. Rates are
    millions of iterations of a pure-Python loop (the kind of work a worker process does) per
    CPU second of the process that ran them."""

    cpus: list[int]
    # alone[r][i]: CPU cpus[i]'s rate in round r while it alone was busy (of our children).
    alone: list[list[float]]
    # together[r][i]: its rate in round r while every CPU was busy.
    together: list[list[float]]
    # others_busy[r][i]: how busy the other CPUs were during alone[r][i] (0..1, /proc/stat),
    # with other processes of the machine: high, the "alone" window had busy neighbours.
    others_busy: list[list[float]]
    window: float

    @property
    def rounds(self) -> int:
        """How many rounds the figures are medians of."""
        return len(self.alone)

    @property
    def capacity(self) -> float:
        """All CPUs busy together do this many times the work of one CPU alone: per round the
        sum of the all-busy rates ÷ the mean of the alone rates, median over the rounds.
        len(cpus) for independent cores, ~1.3 for 2 SMT siblings, 1.0 with one CPU."""
        if len(self.cpus) < 2:
            return 1.0
        return _median([sum(t) / statistics.fmean(a) if statistics.fmean(a) else float("nan")
                        for a, t in zip(self.alone, self.together, strict=True)])

    def slowdown(self) -> list[float]:
        """Per CPU, its rate with every CPU busy ÷ its rate alone in the same round, median
        over the rounds (1.0: the other CPUs' work does not slow it)."""
        return [_median([t[i] / a[i] for a, t in zip(self.alone, self.together, strict=True)
                         if a[i]]) for i in range(len(self.cpus))]

    def headline(self) -> str:
        """One sentence for a report, e.g. '2 CPUs busy together do 1.31× the work of one
        alone (tests/bench/cpu_overlap.py; 2.00 would be independent cores)'."""
        n = len(self.cpus)
        if n < 2:
            return ("1 CPU available: no overlap to measure (1.00× the work of one alone;"
                    " tests/bench/cpu_overlap.py)")
        return (f"{n} CPUs busy together do {self.capacity:.2f}× the work of one alone"
                f" (tests/bench/cpu_overlap.py; {n:.2f} would be independent cores)")

    def detail(self) -> str:
        """Per CPU: its rate alone (median, and the range over the rounds: how much its speed
        moved by itself), how busy the other CPUs were meanwhile, and its slowdown with all
        busy."""
        parts = []
        for i, cpu in enumerate(self.cpus):
            rates = [a[i] for a in self.alone]
            part = f"CPU {cpu} {_median(rates):.1f} alone ({min(rates):.1f}–{max(rates):.1f}"
            if len(self.cpus) > 1:
                busy = _median([b[i] for b in self.others_busy])
                part += (f"; other CPUs {busy:.0%} busy meanwhile),"
                         f" {self.slowdown()[i]:.2f}× that with all busy")
            parts.append(part + ("" if len(self.cpus) > 1 else ")"))
        return ("; ".join(parts) + f" (M loop iterations per CPU second, medians of"
                f" {self.rounds} rounds of {self.window:g} s windows)")

    def as_dict(self) -> dict[str, object]:
        """The fields plus ``capacity`` and ``slowdown``, for a JSON file."""
        return {**asdict(self), "capacity": self.capacity, "slowdown": self.slowdown()}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ------------------------------------------------------------------------------ child


def _count(start: float, end: float) -> tuple[int, float]:
    """Wait for ``start`` (time.monotonic), then loop until ``end``: (iterations, CPU seconds
    this process used meanwhile). CPU seconds, not wall time: a rate per CPU second is the
    CPU's speed, which the time slices that other processes of the machine take from this one
    do not lower (a busy sibling CPU does)."""
    time.sleep(max(0.0, start - time.monotonic()))
    began = time.process_time()
    done = 0
    s = 0
    while time.monotonic() < end:
        for i in range(CHUNK):
            s += i * i % 7
        done += CHUNK
    return done, time.process_time() - began


def child(cpu: int) -> None:
    """The child process: pinned to ``cpu``; reads "start end" lines (time.monotonic, which
    is one clock for every process on Linux) and answers each with "iterations seconds"."""
    os.sched_setaffinity(0, {cpu})
    print("ready", flush=True)
    for line in sys.stdin:
        start, end = map(float, line.split())
        done, seconds = _count(start, end)
        print(done, seconds, flush=True)


# ----------------------------------------------------------------------------- parent


class _Children:
    """One child per CPU, started in __enter__ and ended in __exit__."""

    def __init__(self, cpus: list[int]) -> None:
        self.cpus = cpus
        self.procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> _Children:
        try:
            for cpu in self.cpus:
                self.procs.append(subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "--child", str(cpu)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            for proc in self.procs:
                if _read(proc.stdout) != "ready":
                    raise RuntimeError("cpu_overlap: a child did not start")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.stdin:
                proc.stdin.close()  # the child's loop ends at end of input
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def run(self, which: list[int], window: float) -> tuple[list[float], list[float]]:
        """Run the children at the indexes ``which`` over one common window. Returns their
        rates and, for every CPU, the share of the window it was busy (/proc/stat)."""
        start = time.monotonic() + LEAD
        for i in which:
            stdin = self.procs[i].stdin
            assert stdin is not None
            stdin.write(f"{start} {start + window}\n")
            stdin.flush()
        time.sleep(max(0.0, start - time.monotonic()))
        before = _cpu_ticks()
        time.sleep(max(0.0, start + window - time.monotonic()))
        after = _cpu_ticks()
        rates = []
        for i in which:
            done, seconds = _read(self.procs[i].stdout).split()
            rates.append(int(done) / max(float(seconds), 1e-6) / 1e6)
        busy = []
        for cpu in self.cpus:
            (busy0, total0), (busy1, total1) = before.get(cpu, (0, 0)), after.get(cpu, (0, 0))
            busy.append((busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0)
        return rates, busy


def _cpu_ticks() -> dict[int, tuple[int, int]]:
    """Per CPU, (busy ticks, all ticks) so far, from /proc/stat ({} where it is unreadable)."""
    ticks = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    values = [int(v) for v in fields[:8]]  # user .. steal
                    idle = values[3] + values[4]  # idle + iowait
                    ticks[int(name[3:])] = (sum(values) - idle, sum(values))
    except OSError:
        pass
    return ticks


def _read(stream: IO[str] | None) -> str:
    line = stream.readline() if stream else ""
    if not line:
        raise RuntimeError("cpu_overlap: a child ended early")
    return line.strip()


def _round(children: _Children, window: float,
           all_busy_first: bool) -> tuple[list[float], list[float], list[float]]:
    """One round: every child alone, and all of them at once. Returns the alone rates, the
    all-busy rates and, per CPU, how busy the other CPUs were during its alone window."""
    n = len(children.cpus)
    alone, others_busy, together = [0.0] * n, [0.0] * n, [0.0] * n
    if all_busy_first and n > 1:
        together = children.run(list(range(n)), window)[0]
    for i in range(n):
        (alone[i],), busy = children.run([i], window)
        others = [b for j, b in enumerate(busy) if j != i]
        others_busy[i] = statistics.fmean(others) if others else 0.0
    if not all_busy_first and n > 1:
        together = children.run(list(range(n)), window)[0]
    return alone, (together if n > 1 else list(alone)), others_busy


def measure(rounds: int = ROUNDS, window: float | None = None) -> CpuOverlap:
    """Measure the CPUs this process may run on. Takes about ``BUDGET`` seconds (the window
    shrinks with many CPUs, to ``MIN_WINDOW`` at least) plus ~0.1 s to start the children.
    With one CPU there is nothing to overlap: its rate alone is measured, and ``capacity`` is
    1.0."""
    cpus = sorted(os.sched_getaffinity(0))
    if window is None:
        window = max(MIN_WINDOW, min(WINDOW, BUDGET / (rounds * (len(cpus) + 1))))
    alone, together, others_busy = [], [], []
    with _Children(cpus) as children:
        for round_no in range(rounds):
            # Every other round all-busy first: drift within a round hits both sides alike.
            a, t, b = _round(children, window, all_busy_first=bool(round_no % 2))
            alone.append(a)
            together.append(t)
            others_busy.append(b)
    return CpuOverlap(cpus=cpus, alone=alone, together=together, others_busy=others_busy,
                      window=window)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"default {ROUNDS}")
    parser.add_argument("--window", type=float, default=None,
                        help=f"seconds per measuring window (default: {WINDOW:g}, less with"
                        " many CPUs)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child)
        return 0
    began = time.monotonic()
    result = measure(args.rounds, args.window)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(result.headline())
        print(result.detail())
        print(f"({time.monotonic() - began:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
