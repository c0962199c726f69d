"""Worker memory across rounds of mass connects and disconnects (issue 13, item 14).

    python tests/bench/memory_rounds.py --sessions 3000 --rounds 3
    python tests/bench/memory_rounds.py --sessions 10000 --rounds 3 --workers 2
    python tests/bench/memory_rounds.py --env MALLOC_ARENA_MAX=2 --tracemalloc 1
    python tests/bench/memory_rounds.py --engine asyncio --sessions 1000 --rounds 1 --types

Starts a sioctl cluster (tests/bench/systems.py) serving the benchmark app, then runs rounds:
``--sessions`` idle websockets connect from 127.1.x.y (tests/bench/eio_client.py), are held
for ``--hold`` s and reset at once; the script waits until the workers report (in the master's
status) no session and no connection left, and then ``--settle`` s more. After each phase it
reads each worker's RSS from /proc; at the start, while the sessions are held and after each
round it sends SIGUSR2, which makes a worker log its memory figures (sioctl.worker.memory:
per-session structures, glibc heap, pymalloc arenas, object counts per type, tracemalloc
totals when ``--tracemalloc`` is on, and how long the dump took). ``--env
SIOCTL_MALLOC_TRIM=0`` turns the worker's heap trim off. It prints one table and, with
``--json PATH``, writes everything measured. Bounded: each connect phase has a deadline,
each wait a timeout; every process started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import procstat
import systems
from scenarios import close_all, now, open_sessions, source_ips
from systems import Sioctl, SioctlAsyncio

DRAIN_TIMEOUT = 120.0
DUMP_TIMEOUT = 30.0


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` in MiB (NaN when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def worker_pids(system: Sioctl) -> list[int]:
    """The worker processes (the master's children that run sioctl.worker)."""
    pids = []
    for pid in procstat.descendants(system.master.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        # Its process title (sioctl: worker N [NAME]), or its command line without setproctitle.
        if cmdline.startswith(b"sioctl: worker") or b"sioctl.worker" in cmdline:
            pids.append(pid)
    return sorted(pids)


def dump(system: Sioctl, pids: list[int]) -> dict[int, dict[str, Any]]:
    """Each worker's memory figures: SIGUSR2, then its ``memory {...}`` log line."""
    log = system.work / "sioctl.log"
    start = log.stat().st_size
    for pid in pids:
        os.kill(pid, signal.SIGUSR2)
    found: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + DUMP_TIMEOUT
    while len(found) < len(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
        with open(log, "rb") as f:
            f.seek(start)
            for line in f.read().decode(errors="replace").splitlines():
                marker = line.find("] WARNING memory ")
                if marker < 0 or "pid " not in line:
                    continue
                pid = int(line.split("pid ", 1)[1].split("]", 1)[0])
                found[pid] = json.loads(line[marker + len("] WARNING memory "):])
    return found


def cluster_load(system: Sioctl) -> tuple[int, int]:
    """(sessions, connections) the workers last reported to the master (once a second)."""
    from sioctl.cluster.control import request

    control = os.path.join(system.run_dir, f"bench{system.port}", "control.sock")
    slots = request(control, {"cmd": "status"}, timeout=5.0).get("slots", [])
    return (sum(s.get("sessions", 0) for s in slots), sum(s.get("connections", 0) for s in slots))


async def wait_drained(system: Sioctl) -> tuple[int, int]:
    """Wait until the workers report no session and no connection left (as their heartbeat
    tells the master: nothing in the workers is touched); returns what is left after
    DRAIN_TIMEOUT at worst."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        await asyncio.sleep(1.0)
        left = await asyncio.to_thread(cluster_load, system)
        if left == (0, 0) or time.monotonic() > deadline:
            return left


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    log_dir = Path(tempfile.mkdtemp(prefix="memory-rounds-"))
    engine = SioctlAsyncio if args.engine == "asyncio" else Sioctl
    system = engine(args.workers, None, None, log_dir)
    system.log_level = "info"  # the worker's heap-trim lines
    with system:
        pids = worker_pids(system)
        print(f"workers {pids}, logs in {system.work}", flush=True)

        def row(phase: str, extra: dict[str, Any] | None = None) -> None:
            entry = {"phase": phase, "rss_mib": [round(rss_mib(p), 1) for p in pids]}
            entry.update(extra or {})
            rows.append(entry)
            print(f"{phase:<22} RSS MiB {entry['rss_mib']}"
                  + (f"  {extra.get('note', '')}" if extra else ""), flush=True)

        await asyncio.sleep(2)
        base = await asyncio.to_thread(dump, system, pids)
        row("baseline", {"figures": base})
        ips = source_ips()
        for number in range(1, args.rounds + 1):
            started = now()
            sessions, failures = await open_sessions(
                system.port, args.sessions, ips, now() + max(30.0, args.sessions / 50),
                concurrency=200)
            held = sum(1 for s in sessions if s.is_open)
            figures = await asyncio.to_thread(dump, system, pids)
            took = [f.get("dump_ms") for _, f in sorted(figures.items())]
            row(f"round {number} held", {"held": held, "failed": failures,
                                         "connect_s": round(now() - started, 1),
                                         "figures": figures,
                                         "note": f"{held} held, {failures} failed, "
                                                 f"dump took {took} ms"})
            await asyncio.sleep(args.hold)
            close_all(sessions)
            del sessions
            left = await wait_drained(system)
            await asyncio.sleep(1.5)  # the heartbeat after the drop: the worker trims then
            row(f"round {number} drained", {"left": left, "note": f"left {left}"})
            await asyncio.sleep(args.settle)
            figures = await asyncio.to_thread(dump, system, pids)
            row(f"round {number} settled", {"figures": figures})
        log = (system.work / "sioctl.log").read_text(errors="replace").splitlines()
        trims = [line for line in log if "heap trimmed" in line]
        rows.append({"phase": "trims", "lines": trims})
        print("\n".join(trims) or "no heap trim logged", flush=True)
    return rows


def print_figures(rows: list[dict[str, Any]]) -> None:
    """Per-worker heap, allocator and structure figures of each dump."""
    for entry in rows:
        for pid, fig in sorted(entry.get("figures", {}).items()):
            heap = fig.get("heap_kib", {})
            arenas = fig.get("pymalloc", {})
            nonzero = {k: v for k, v in fig["structures"].items() if v}
            print(f"{entry['phase']:<18} pid {pid}: RSS {fig['rss_kib'] // 1024} MiB "
                  f"{fig.get('rss_split_kib')}")
            print(f"{'':<18} glibc heap MiB: mapped {heap.get('mapped', 0) // 1024}, in use "
                  f"{heap.get('in_use', 0) // 1024}, free {heap.get('free', 0) // 1024}; "
                  f"pymalloc: {arenas.get('arenas')} arenas of 1 MiB, "
                  f"{arenas.get('used_bytes', 0) >> 20} MiB in used blocks; "
                  f"{fig.get('objects')} objects; tracemalloc {fig.get('tracemalloc_kib')}")
            print(f"{'':<18} non-empty structures: {nonzero}")
            for line in fig.get("tracemalloc_growth", [])[:8]:
                print(f"{'':<18} tracemalloc growth since the last dump: {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--engine", choices=("eventlet", "asyncio"), default="eventlet",
                        help="asyncio: the AsyncServer twin of the bench app, -k asyncio")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--hold", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--tracemalloc", type=int, default=0,
                        help="frames per trace (PYTHONTRACEMALLOC); 0: off")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment of the cluster (e.g. MALLOC_ARENA_MAX=2)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--types", action="store_true", help="print object counts per type")
    args = parser.parse_args()
    if args.tracemalloc:
        os.environ["PYTHONTRACEMALLOC"] = str(args.tracemalloc)
        # Tracing every allocation makes the imports ~15x slower: on a loaded machine a
        # worker's boot then takes longer than the usual wait for the cluster.
        systems.BOOT_TIMEOUT = max(systems.BOOT_TIMEOUT, 240.0)
    for item in args.env:
        key, _, value = item.partition("=")
        os.environ[key] = value
    rows = asyncio.run(run(args))
    print_figures(rows)
    if args.types:
        for entry in rows:
            for pid, fig in sorted(entry.get("figures", {}).items()):
                print(entry["phase"], pid, fig.get("types"))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
