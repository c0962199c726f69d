"""sioctl against an earlier sioctl: the same scenarios, side by side in one run.

Run from the repository root::

    python tests/bench/compare.py --baseline REV [--quick] [--rounds N] [--engines ...]

REV (a commit, tag or branch) is checked out into a temporary git worktree and run as
"sioctl @ REV" beside this checkout's sioctl, on the same bench app, the same redis-server and
the same load generator as ``suite.py``, on each engine (``--engines eventlet asyncio``, both
by default: the asyncio engine serves the AsyncServer twin of the bench app; a baseline without
the asyncio engine is reported as failed to start there). Rounds alternate the two (before,
after, after, before, ...), so that machine drift hits both alike. The scenarios are the ones
the hot-path work aimed at: echo at saturation with small and with 16 KiB messages
(per-message cost, websocket unmasking), targeted emits to a client on another worker (owner
lookups), the connection hand-off (the master) and memory per idle websocket (1000 sessions;
3000 or 10000 with ``--scenarios idle-3k`` / ``idle-10k``). ``--offer-deflate``: the clients
offer permessage-deflate, as browsers do.
Writes docs/benchmarks-optimizations.md (and .json).
Every server binds 127.0.0.1; every process started is stopped, on errors and Ctrl-C too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
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

import cpu_overlap  # noqa: E402
import eio_client  # noqa: E402
import redis  # noqa: E402
import report  # noqa: E402
import scenarios  # noqa: E402
import suite  # noqa: E402
import systems  # noqa: E402

from sioctl.cluster.redis_server import RedisServer  # noqa: E402

LARGE_TEXT = "x" * 16384
STEPS: list[tuple[str, Any]] = [
    # First: memory per idle websocket is measured from the system as it started (as in
    # suite.py), before any other phase has grown its heap.
    ("idle-1k", lambda s, p: scenarios.idle(s, p, 1000)),
    ("idle-3k", lambda s, p: scenarios.idle(s, p, 3000)),
    ("echo-fixed", lambda s, p: scenarios.echo(s, p, p.echo_rate)),
    ("echo-saturation", lambda s, p: scenarios.echo(s, p, None)),
    ("echo-16k-saturation", lambda s, p: scenarios.echo(s, p, None, LARGE_TEXT)),
    ("targeted", scenarios.targeted),
    ("targeted-crossed", lambda s, p: scenarios.targeted(s, p, crossed=True)),
    ("handoff", scenarios.handoff),
    ("broadcast", scenarios.broadcast),
    # Last, as in suite.py: tearing down 10k sessions keeps a worker busy for seconds; its
    # memory is measured from the fresh system's all the same (scenarios.idle). Not run unless
    # named (--scenarios idle-10k).
    ("idle-10k", lambda s, p: scenarios.idle(s, p, 10000)),
]
# Scenarios run only when --scenarios names them.
OPT_IN = ("idle-3k", "idle-10k")
# The figure each scenario is judged by first, and whether more is better.
HEADLINES = {"msgs/s": True, "server µs/msg": False, "p99 ms": False,
             "conn/s": True, "front µs/conn": False, "KiB/conn": False,
             "deliveries/s": True, "server µs/delivery": False, "generator µs/msg": False}
ENGINES = ("eventlet", "asyncio")
TITLE = "Hot-path work: sioctl before and after"


def stage_baseline(rev: str, into: Path) -> tuple[Path, str]:
    """A git worktree of ``rev`` plus a directory that imports it as ``sioctl`` (the package's
    folders are top-level in the repository; pyproject maps them) and this checkout's tests (the
    bench app). The baseline runs from that directory: the current directory comes first on
    sys.path, before the editable install of this checkout. Returns (that directory, the
    commit's short hash)."""
    tree = into / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=REPO_ROOT,
                   check=True, capture_output=True)
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO_ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    package = into / "path" / "sioctl"
    package.mkdir(parents=True)
    for name in ("__init__.py", "__main__.py"):
        (package / name).symlink_to(tree / "sioctl" / name)
    for folder in ("cluster", "worker", "cli"):
        (package / folder).symlink_to(tree / folder)
    (into / "path" / "tests").symlink_to(REPO_ROOT / "tests")
    return into / "path", commit


class Baseline:
    """sioctl from the staged baseline, run from its directory (see stage_baseline)."""

    path = ""
    commit = ""
    workers = 1

    @property
    def label(self) -> str:
        engine = " asyncio" if isinstance(self, systems.SioctlAsyncio) else ""
        return (f"sioctl{engine} @ {self.commit}, {self.workers} "
                f"worker{'s' if self.workers > 1 else ''}")

    def _spawn(self, argv: list[str], log_name: str, **kwargs: Any) -> Any:
        env = {**os.environ, "PYTHONPATH": self.path}
        # (a mixin: super() is the engine's systems.Sioctl class)
        return super()._spawn(argv, log_name, env=env, cwd=self.path,  # type: ignore[misc]
                              **kwargs)


class BaselineSioctl(Baseline, systems.Sioctl):
    """The baseline's eventlet engine."""


class BaselineSioctlAsyncio(Baseline, systems.SioctlAsyncio):
    """The baseline's asyncio engine."""


# The system class of each (version, engine).
SYSTEMS: dict[tuple[str, str], type[systems.Sioctl]] = {
    ("before", "eventlet"): BaselineSioctl, ("before", "asyncio"): BaselineSioctlAsyncio,
    ("after", "eventlet"): systems.Sioctl, ("after", "asyncio"): systems.SioctlAsyncio,
}


async def run_steps(system: systems.System, plan: scenarios.Plan, version: str, engine: str,
                    round_no: int, log: list[dict[str, Any]], only: list[str]) -> None:
    for name, step in STEPS:
        if name not in only:
            continue
        began = time.monotonic()
        record: dict[str, Any] = {"round": round_no, "version": version, "engine": engine,
                                  "workers": system.workers, "scenario": name}
        try:
            result = await step(system, plan)
        except Exception as exc:  # one failed scenario must not end the run: report it
            record["error"] = f"{type(exc).__name__}: {exc}"
            print(f"    {name}: FAILED {record['error']}", flush=True)
        else:
            record.update(metrics=result.metrics, usage=dataclasses.asdict(result.usage))
            shown = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items())
            print(f"    {name}: {shown}; generator {result.usage.own_load:.0%}", flush=True)
        record["elapsed"] = time.monotonic() - began
        log.append(record)


def write_report(path: Path, data: dict[str, Any]) -> None:
    """Before/after tables: the median of each figure over the rounds, and after ÷ before."""
    results = [r for r in data["results"] if "metrics" in r]
    failed = [r for r in data["results"] if "error" in r]
    before, after = data["before"], data["after"]
    lines = [
        f"# {data.get('title', TITLE)}",
        "",
        f"Written by `tests/bench/compare.py`; regenerate with `{data['command']}`.",
        "",
        f"Run on {data['info'].get('date', '')} ({data['info'].get('cpus', '')} CPUs), "
        f"{data['rounds']} round(s) alternating the two versions, "
        f"{'quick' if data['quick'] else 'full'} phases, {data['seconds'] / 60:.1f} min. "
        f"**before** is sioctl at `{before}`; **after** is this checkout (`{after}`). Same bench "
        "app, redis-server and load generator as docs/benchmarks.md; each figure is the "
        "median over the rounds.",
        "",
    ]
    # Runs before cpu_overlap.py have no such line.
    if "CPU capacity" in data["info"]:
        lines += [f"CPU capacity: {data['info']['CPU capacity']}. CPU speed:"
                  f" {data['info'].get('CPU speed', '–')}. A 2-worker figure that one saturated"
                  " process sets is bounded by that process's speed while the other CPU is"
                  " busy.", ""]
    # Records of runs before the asyncio engine was compared have no "engine": eventlet's.
    engines = [e for e in ENGINES if any(r.get("engine", "eventlet") == e for r in results)]
    for engine, workers, scenario in [(e, w, n) for e in engines
                                      for w in sorted({r["workers"] for r in results})
                                      for n, _ in STEPS]:
        rows = [r for r in results if r["workers"] == workers and r["scenario"] == scenario
                and r.get("engine", "eventlet") == engine]
        if rows:
            figures = [k for k in rows[0]["metrics"] if k in HEADLINES] or list(rows[0]["metrics"])
            lines += [f"## {scenario}, {workers} worker{'s' if workers > 1 else ''}, {engine}",
                      "", "| figure | before | after | after ÷ before |", "|---|--:|--:|--:|"]
            for figure in figures:
                values = {}
                for version in ("before", "after"):
                    got = [r["metrics"][figure] for r in rows
                           if r["version"] == version and figure in r["metrics"]]
                    values[version] = statistics.median(got) if got else float("nan")
                ratio = values["after"] / values["before"] if values["before"] else float("nan")
                lines.append(f"| {figure} | {values['before']:,.4g} | {values['after']:,.4g} "
                             f"| {ratio:.2f} |")
            lines.append("")
    if failed:
        lines += ["## Failures", ""] + [
            f"- round {r['round']}, {r['version']}, {r.get('engine', 'eventlet')}, "
            f"{r['workers']}w, {r['scenario']}: {r['error']}" for r in failed] + [""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="the earlier sioctl (git revision)")
    parser.add_argument("--quick", action="store_true", help="short phases, one round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (full: 3, quick: 1)")
    parser.add_argument("--workers", nargs="+", type=int, choices=(1, 2), default=[2])
    parser.add_argument("--title", default=TITLE, help="the report's heading")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--scenarios", nargs="+", choices=[name for name, _ in STEPS],
                        default=[name for name, _ in STEPS if name not in OPT_IN])
    # Not docs/benchmarks-optimizations.md: that file is written by hand from several runs,
    # one section per piece of work, and a regenerated one would replace them all.
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "build" / "compare.md",
                        help="the report (and its .json beside it); default build/compare.md")
    parser.add_argument("--offer-deflate", action="store_true",
                        help="the load generator's clients offer permessage-deflate, as "
                        "browsers do (and compress what they send when it is accepted)")
    args = parser.parse_args(argv)
    eio_client.Session.offer_deflate = args.offer_deflate
    plan = scenarios.Plan.quick() if args.quick else scenarios.Plan.full()
    rounds = args.rounds or (1 if args.quick else 3)
    suite.raise_fd_limit()
    suite.interrupt_on_sigterm()
    run = suite.event_loop_runner()
    began = time.monotonic()
    # Before any server starts (as suite.py does): what both CPUs busy together do against
    # one alone. ~3 s.
    overlap = cpu_overlap.measure()
    print(f"CPU capacity: {overlap.headline()}", flush=True)
    info = report.machine_info(overlap)
    work = Path(tempfile.mkdtemp(prefix="siocompare-"))
    log: list[dict[str, Any]] = []
    after = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                           capture_output=True, text=True).stdout.strip() or "HEAD"
    try:
        Baseline.path, Baseline.commit = map(
            str, stage_baseline(args.baseline, work / "baseline"))
        with RedisServer(str(work / "redis"), unix_socket=False) as server:
            for round_no in range(1, rounds + 1):
                order = ["before", "after"] if round_no % 2 else ["after", "before"]
                for engine, workers, version in [(e, w, v) for e in args.engines
                                                 for w in args.workers for v in order]:
                    client = redis.Redis.from_url(server.url, socket_timeout=5)
                    try:
                        client.flushall()
                    finally:
                        client.close()
                    system = SYSTEMS[version, engine](workers, server.url,
                                                      int(server.pid or 0), work)
                    print(f"round {round_no}/{rounds}: {version}: {system.label}", flush=True)
                    try:
                        with system:
                            run(run_steps(system, plan, version, engine, round_no, log,
                                          args.scenarios))
                    except RuntimeError as exc:  # it did not start (a baseline before asyncio)
                        print(f"  could not start: {exc}", flush=True)
                        log.append({"round": round_no, "version": version, "engine": engine,
                                    "workers": workers, "scenario": "start",
                                    "error": str(exc)[:300]})
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(work / "baseline" / "tree")],
                       cwd=REPO_ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    command = "python tests/bench/compare.py " + " ".join(argv or sys.argv[1:])
    data = {"info": info, "command": command, "quick": args.quick, "title": args.title,
            "rounds": rounds, "before": Baseline.commit, "after": after,
            "seconds": time.monotonic() - began, "cpu overlap": overlap.as_dict(),
            "results": log}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(data, indent=1, default=float) + "\n")
    write_report(args.output, data)
    print(f"wrote {args.output} in {(time.monotonic() - began) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
