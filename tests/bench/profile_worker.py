"""Where a sioctl worker spends its CPU under one of the suite's scenarios (py-spy).

Run from the repository root (py-spy comes with the ``bench`` extra)::

    python tests/bench/profile_worker.py [--scenario echo-saturation] [--workers 2]
                                         [--seconds 10] [--top 25] [--out DIR]

Starts a sioctl cluster (one redis-server on a free port when --workers > 1), runs the
scenario for --seconds while ``py-spy record`` samples every worker (and the master), then
prints, per process, the functions with the most samples: *self* (the function itself was
running) and *total* (it was on the stack). The collapsed stacks stay in --out for flame graphs
(``py-spy``'s raw format, one line per stack). Everything stops by itself at the end.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parents[1]
for _path in (str(REPO_ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import eio_client  # noqa: E402
import scenarios  # noqa: E402
import systems  # noqa: E402
from suite import event_loop_runner, raise_fd_limit  # noqa: E402

from sioctl.cluster.redis_server import RedisServer  # noqa: E402


def hot_functions(collapsed: Path, top: int) -> list[str]:
    """The ``top`` functions by self and by total samples in a py-spy raw (collapsed) file."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return ["  (no samples)"]
    lines = [f"  {samples} samples; self:"]
    lines += [f"    {n / samples:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["  total (on the stack):"]
    lines += [f"    {n / samples:6.1%}  {f}" for f, n in total.most_common(top)]
    return lines


def _recorder(perf: bool, pid: int, seconds: float, stem: Path) -> list[str]:
    """The command that samples ``pid`` for ``seconds`` (it ends by itself) into ``stem``.txt
    (py-spy's raw stacks) or, with ``perf``, ``stem``.perf (perf's cpu-clock samples: this VM
    has no hardware counters)."""
    if perf:
        return ["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-p", str(pid),
                "-o", f"{stem}.perf", "--", "sleep", str(seconds)]
    return [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
            "--format", "raw", "--nolineno", "--rate", "200", "--duration",
            str(int(seconds)), "--output", f"{stem}.txt"]


def perf_top(path: Path, top: int) -> str:
    """The ``top`` symbols of a perf recording by their share of its samples."""
    report = subprocess.run(
        ["perf", "report", "-i", str(path), "--stdio", "--no-children", "--sort",
         "dso,symbol", "--percent-limit", "0.3"], capture_output=True, text=True, check=False)
    rows = [line for line in report.stdout.splitlines() if line.strip()
            and not line.startswith("#")]
    return "\n".join(rows[:top])


def _switches(targets: dict[str, int]) -> dict[str, tuple[int, int]]:
    """(voluntary, involuntary) context switches so far of each process in ``targets``."""
    counts = {}
    for name, pid in targets.items():
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        counts[name] = (int(fields.get("voluntary_ctxt_switches", 0)),
                        int(fields.get("nonvoluntary_ctxt_switches", 0)))
    return counts


def _redis_reset(url: str) -> None:
    """Zero redis-server's command statistics and slow log, so the report covers one run."""
    import redis
    client = redis.Redis.from_url(url)
    client.config_resetstat()
    client.slowlog_reset()
    client.close()


def _redis_report(url: str) -> list[str]:
    """What redis-server did during the run: its CPU and calls per command."""
    import redis
    client = redis.Redis.from_url(url)
    try:
        cpu = client.info("cpu")
        stats = client.info("commandstats")
        io = client.info("stats")
        slow = client.slowlog_get(5)
    finally:
        client.close()
    lines = [f"redis-server: used_cpu_sys {cpu['used_cpu_sys']:.2f} s, "
             f"used_cpu_user {cpu['used_cpu_user']:.2f} s (since start)"]
    lines.append(f"  reads processed {io.get('total_reads_processed')}, writes processed "
                 f"{io.get('total_writes_processed')} (since start: one read per batch a "
                 "client sent, one write per reply or push burst)")
    for name, fields in sorted(stats.items(), key=lambda kv: -kv[1]["calls"]):
        lines.append(f"  {name}: {fields['calls']} calls, {fields['usec_per_call']:.1f} µs/call")
    lines += [f"  slowlog: {entry['duration']} µs {entry['command']!r:.80}" for entry in slow]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    names = [name for name, _ in scenarios.scenarios(scenarios.Plan.full())]
    parser.add_argument("--scenario", choices=names, default="echo-saturation")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=2)
    parser.add_argument("--system", choices=("sioctl", "sioctl-asyncio", "uvicorn",
                                             "python-socketio"),
                        default="sioctl",
                        help="what to profile (uvicorn, python-socketio: one process)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None, help="where the stacks go")
    parser.add_argument("--perf", action="store_true",
                        help="sample with perf (cpu-clock) instead of py-spy: the C functions "
                        "and the kernel's, by shared object, rather than the Python frames")
    parser.add_argument("--offer-deflate", action="store_true",
                        help="the clients offer permessage-deflate, as browsers do (sioctl "
                        "accepts it with SIOCTL_WS_PER_MESSAGE_DEFLATE=1 in the environment)")
    args = parser.parse_args(argv)
    eio_client.Session.offer_deflate = args.offer_deflate
    out = args.out or Path(tempfile.mkdtemp(prefix="sioprof-"))
    out.mkdir(parents=True, exist_ok=True)
    plan = dataclasses.replace(scenarios.Plan.full(), seconds=args.seconds)
    scenario = dict(scenarios.scenarios(plan))[args.scenario]
    raise_fd_limit()
    run = event_loop_runner()
    with RedisServer(str(out / "redis"), unix_socket=False) as redis_server:
        workers = args.workers if args.system.startswith("sioctl") else 1
        system = systems.make(args.system, workers, redis_server.url,
                              int(redis_server.pid or 0), out)
        with system:
            roles = system.roles()
            targets = {f"worker-{pid}": pid for pid in roles["workers"]}
            for pid in roles.get("front", []):
                targets[f"master-{pid}"] = pid
            spies: dict[str, subprocess.Popen[bytes]] = {}
            try:
                for name, pid in targets.items():
                    spies[name] = subprocess.Popen(
                        _recorder(args.perf, pid, args.seconds + 4, out / name),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                before = _switches(targets)
                _redis_reset(redis_server.url)
                result: Any = run(scenario(system, plan))
                print(f"{args.scenario}: " + ", ".join(
                    f"{k} {v:.4g}" for k, v in result.metrics.items()))
                print("\n".join(_redis_report(redis_server.url)))
                after = _switches(targets)
                for name in targets:
                    print(f"{name}: context switches (voluntary, involuntary) "
                          f"{after[name][0] - before[name][0]}, {after[name][1] - before[name][1]}")
            finally:
                for spy in spies.values():
                    try:
                        spy.wait(args.seconds + 30)
                    except subprocess.TimeoutExpired:
                        spy.kill()
                        spy.wait()
    for name in targets:
        path = out / f"{name}.{'perf' if args.perf else 'txt'}"
        print(f"\n{name} ({path}):")
        if not path.exists():
            print("  (no file)")
        elif args.perf:
            print(perf_top(path, args.top))
        else:
            print("\n".join(hot_functions(path, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
