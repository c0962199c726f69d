"""Where the CPU of the fixed-load echo goes, per server process, and what CPU placement does
to it.

Run from the repository root, under the bench lock::

    python tests/bench/fixed_load_probe.py [--rounds 3] [--seconds 5] [--idle 3]
        [--configs uvicorn:1 sioctl-asyncio:1 sioctl-asyncio:2] [--rates 1000]
        [--placements free pinned split]

For every (system, workers, rate, placement), in alternating rounds: the system idles for --idle
with no client (its idle CPU), then runs the suite's fixed-load echo (``Plan.full()``'s rate
and clients; ``--rates`` offers others). Per server process it reads the kernel's own
counters (``/proc/PID/schedstat``: nanoseconds on a CPU and waiting for one, timeslices;
``/proc/PID/status``: voluntary and involuntary context switches) and prints them per echo
answered. Placements (``taskset``):

- ``free``: as the suite runs (the scheduler places every process).
- ``pinned``: server process i on CPU i mod ncpu; the load generator (this process) free.
- ``split``: every server process on CPU 0, the load generator alone on CPU 1.

The hardware counters (instructions, cycles) are not exposed in this VM (``perf stat -e
instructions`` says "not supported"), so these are the kernel's software counters, and
``perf stat``'s software events on the workers during the echo when ``perf`` is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parents[1]
for _path in (str(REPO_ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import scenarios  # noqa: E402
import systems  # noqa: E402
from suite import event_loop_runner, raise_fd_limit  # noqa: E402

from sioctl.cluster.redis_server import RedisServer  # noqa: E402


def counters(pid: int) -> tuple[float, float, float, float, float]:
    """(µs on a CPU, µs waiting for a CPU, timeslices, voluntary, involuntary switches)."""
    try:
        run_ns, wait_ns, slices = Path(f"/proc/{pid}/schedstat").read_text().split()[:3]
        status = dict(line.split(":", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    except OSError:
        return (0.0, 0.0, 0.0, 0.0, 0.0)
    return (int(run_ns) / 1e3, int(wait_ns) / 1e3, float(slices),
            float(status["voluntary_ctxt_switches"]), float(status["nonvoluntary_ctxt_switches"]))


def sample(pids: list[int]) -> dict[int, tuple[float, ...]]:
    return {pid: counters(pid) for pid in pids}


def delta(before: dict[int, tuple[float, ...]],
          after: dict[int, tuple[float, ...]]) -> dict[int, tuple[float, ...]]:
    """What each process's counters grew by."""
    return {pid: tuple(a - b for a, b in zip(after[pid], before[pid], strict=True))
            for pid in before}


def place(system: systems.System, placement: str) -> None:
    """Pin the system's server processes (and this process) as ``placement`` says."""
    ncpu = os.cpu_count() or 1
    everything = set(range(ncpu))
    roles = system.roles()
    server = [pid for pids in roles.values() for pid in pids]
    workers = roles["workers"]
    for pid in server:
        os.sched_setaffinity(pid, everything)
    os.sched_setaffinity(0, everything)
    if placement == "pinned":
        for i, pid in enumerate(workers):
            os.sched_setaffinity(pid, {i % ncpu})
    elif placement == "split":
        for pid in server:
            os.sched_setaffinity(pid, {0})
        os.sched_setaffinity(0, {1 % ncpu})


PERF_EVENTS = "task-clock,context-switches,cpu-migrations,page-faults"


def perf_stat(pids: list[int], out: Path) -> subprocess.Popen[bytes] | None:
    """``perf stat`` of the software events on ``pids`` (one line per pid) until SIGINT, or
    None when perf is not installed."""
    try:
        return subprocess.Popen(["perf", "stat", "-x", ",", "--per-thread", "-e", PERF_EVENTS,
                                 "-p", ",".join(map(str, pids)), "-o", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def perf_counts(proc: subprocess.Popen[bytes] | None, out: Path) -> dict[str, float]:
    """Stop ``perf_stat``'s process; its counts summed over the threads, by event."""
    if proc is None:
        return {}
    proc.send_signal(signal.SIGINT)
    proc.wait(10)
    counts: dict[str, float] = {}
    for line in out.read_text(errors="replace").splitlines():
        fields = line.split(",")
        if len(fields) < 4 or line.startswith("#"):
            continue
        try:
            value = float(fields[1])
        except ValueError:
            continue
        event = fields[3]
        counts[event] = counts.get(event, 0.0) + value
    return counts


def strace_counts(pids: list[int], out: Path) -> list[subprocess.Popen[bytes]]:
    """``strace -c -f`` on each of ``pids`` until SIGINT (it slows them: the CPU figures of a
    run with it are not the suite's)."""
    return [subprocess.Popen(["strace", "-c", "-f", "-o", str(out / f"strace-{pid}.txt"),
                              "-p", str(pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid in pids]


def strace_totals(procs: list[subprocess.Popen[bytes]], pids: list[int],
                  out: Path) -> dict[str, float]:
    """Stop ``strace_counts``'s processes; the calls per system call, summed over ``pids``."""
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    calls: dict[str, float] = {}
    for proc, pid in zip(procs, pids, strict=True):
        proc.wait(10)
        for line in (out / f"strace-{pid}.txt").read_text(errors="replace").splitlines():
            fields = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
                calls[fields[-1]] = calls.get(fields[-1], 0.0) + int(fields[3])
    return calls


async def measure(system: systems.System, plan: scenarios.Plan, out: Path,
                  idle_for: float, strace: bool = False) -> dict[str, Any]:
    """Idle CPU for ``idle_for`` s, then the fixed-load echo's counters per server process
    (with ``strace``: its system calls instead of perf's counts)."""
    roles = system.roles()
    pids = {pid: role for role, group in roles.items() for pid in group}
    before = sample(list(pids))
    started = time.perf_counter()
    await asyncio.sleep(idle_for)
    idle_seconds = time.perf_counter() - started
    idle = delta(before, sample(list(pids)))
    before = sample(list(pids))
    own_before = os.times()
    if strace:
        tracers = strace_counts(roles["workers"], out)
        await asyncio.sleep(1.0)  # strace attached
        result = await scenarios.echo(system, plan, plan.echo_rate)
        counts = strace_totals(tracers, roles["workers"], out)
    else:
        perf = perf_stat(roles["workers"], out / "perf.txt")
        result = await scenarios.echo(system, plan, plan.echo_rate)
        counts = perf_counts(perf, out / "perf.txt")
    own_after = os.times()
    busy = delta(before, sample(list(pids)))
    answered = result.metrics["msgs/s"] * result.usage.seconds
    return {"idle": idle, "idle_seconds": idle_seconds, "busy": busy, "answered": answered,
            "pids": pids, "metrics": result.metrics, "perf": counts,
            "own_us": ((own_after.user + own_after.system)
                       - (own_before.user + own_before.system)) * 1e6,
            "server_us_per_msg": result.metrics["server µs/msg"]}


def report(label: str, m: dict[str, Any]) -> dict[str, float]:
    n = m["answered"]
    total_run = 0.0
    lines = []
    for pid, role in m["pids"].items():
        run, wait, slices, vol, invol = m["busy"][pid]
        idle_run = m["idle"][pid][0]
        total_run += run
        if role == "workers" or run / n > 1:
            lines.append(f"    {role:8} {pid}: {run / n:6.1f} µs run/msg, {wait / n:5.1f} µs "
                         f"wait/msg, {slices / n:4.2f} slices/msg, vol {vol / n:4.2f} invol "
                         f"{invol / n:4.2f} /msg; idle {idle_run / m['idle_seconds'] / 1e3:5.2f}"
                         " ms/s")
    print(f"  {label}: {m['server_us_per_msg']:.0f} server µs/msg (ticks), {total_run / n:.1f} "
          f"µs/msg (schedstat), p50 {m['metrics']['p50 ms']:.2f} ms, generator "
          f"{m['own_us'] / n:.0f} µs/msg", flush=True)
    if m["perf"]:
        lines.append("    perf stat or strace, workers, per msg: " + ", ".join(
            f"{event} {value / n:.3g}" for event, value in
            sorted(m["perf"].items(), key=lambda kv: -kv[1]) if value / n >= 0.01))
    print("\n".join(lines), flush=True)
    return {"ticks": m["server_us_per_msg"], "sched": total_run / n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--configs", nargs="+",
                        default=["uvicorn:1", "sioctl-asyncio:1", "sioctl-asyncio:2"])
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of the idle phase")
    parser.add_argument("--rates", nargs="+", type=float, default=[1000.0],
                        help="offered echoes/s (the suite's is 1000)")
    parser.add_argument("--placements", nargs="+", default=["free", "pinned", "split"],
                        choices=["free", "pinned", "split"])
    parser.add_argument("--strace", action="store_true",
                        help="count the workers' system calls per echo (strace -c; it slows "
                        "them, so the CPU figures are not the suite's)")
    args = parser.parse_args(argv)
    plan = dataclasses.replace(scenarios.Plan.full(), seconds=args.seconds)
    raise_fd_limit()
    run = event_loop_runner()
    figures: dict[str, list[dict[str, float]]] = {}
    out = Path(tempfile.mkdtemp(prefix="fixedprobe-"))
    with RedisServer(str(out / "redis"), unix_socket=False) as redis_server:
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}", flush=True)
            for config in args.configs:
                name, workers = config.split(":")
                system = systems.make(name, int(workers), redis_server.url,
                                      int(redis_server.pid or 0), out)
                with system:
                    for rate in args.rates:
                        for placement in args.placements:
                            place(system, placement)
                            label = f"{config} {rate:.0f}/s {placement}"
                            at_rate = dataclasses.replace(plan, echo_rate=rate)
                            figures.setdefault(label, []).append(
                                report(label, run(measure(system, at_rate, out, args.idle,
                                                     args.strace))))
                os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    print("\nmedians (server µs/msg by ticks, by schedstat):")
    for label, values in figures.items():
        print(f"  {label:34} {statistics.median(v['ticks'] for v in values):6.0f} "
              f"{statistics.median(v['sched'] for v in values):6.1f}   rounds "
              + ", ".join(f"{v['sched']:.0f}" for v in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
