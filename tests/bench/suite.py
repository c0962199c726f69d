"""sioctl against the alternatives, every scenario on every system in one run.

Run from the repository root (``make bench`` / ``make bench-quick`` do)::

    python tests/bench/suite.py [--quick] [--rounds N] [--only SYSTEM ...]

Systems (tests/bench/systems.py): one python-socketio process; nginx ``hash $remote_addr
consistent`` over N python-socketio processes on a RedisManager; the Node.js Socket.IO cluster;
sioctl; with 1 and 2 workers where that applies. Scenarios (tests/bench/scenarios.py):
connection hand-off, echo with ack at a fixed load and at saturation, targeted emits to a
client on another worker, broadcast fan-out, idle connections. Rounds go through every system
once, in an order that turns by one each round, so that machine drift hits all alike.

Writes docs/benchmarks.md, docs/benchmarks.json (the raw results) and docs/bench-*.png. Every
server binds 127.0.0.1; one redis-server on a free port serves the run; every process started
is stopped at the end, on errors and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
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
import systems  # noqa: E402

from sioctl.cluster.redis_server import RedisServer  # noqa: E402

# (system, workers), in the order of the first round.
CONFIGS = [("python-socketio", 1), ("nginx", 1), ("node", 1), ("sioctl", 1),
           ("uvicorn", 1), ("sioctl-asyncio", 1),
           ("nginx", 2), ("node", 2), ("sioctl", 2), ("sioctl-asyncio", 2)]


def interrupt_on_sigterm() -> None:
    """Make SIGTERM stop the run like Ctrl-C does: through the cleanup that stops every
    process started (a plain SIGTERM would end this process and orphan the servers)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def raise_fd_limit() -> None:
    """Let this process hold the idle scenario's 10k sockets (soft limit up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def event_loop_runner() -> Any:
    """asyncio.run, on uvloop when it is installed (the bench extra): the load generator then
    spends less CPU per message."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


async def run_config(system: systems.System, plan: scenarios.Plan, round_no: int,
                     log: list[dict[str, Any]], plan_filter: list[str] | None = None) -> None:
    """Every scenario against ``system``; appends one record per scenario to ``log``."""
    for name, scenario in scenarios.scenarios(plan):
        if plan_filter and name not in plan_filter:
            continue
        record: dict[str, Any] = {"round": round_no, "system": system.name,
                                  "workers": system.workers, "scenario": name}
        began = time.monotonic()
        try:
            result = await scenario(system, plan)
        except Exception as exc:  # one failed scenario must not end the run: report it
            record["error"] = failure_text(exc)
            print(f"    {name}: FAILED {record['error']}", flush=True)
            traceback.print_exc(limit=3)
        else:
            record.update(metrics=result.metrics, usage=dataclasses.asdict(result.usage),
                          notes=result.notes)
            shown = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items())
            print(f"    {name}: {shown}; generator {result.usage.own_load:.0%} of a core",
                  flush=True)
        record["elapsed"] = time.monotonic() - began
        log.append(record)


def failure_text(exc: BaseException) -> str:
    """``exc`` in one line for the report; one without a message (a time-out) says where in
    the bench's code it was raised instead."""
    text = str(exc)
    if not text:
        here = [f for f in traceback.extract_tb(exc.__traceback__)
                if Path(f.filename).resolve().parent == BENCH_DIR]
        text = (f"raised in {here[-1].name}() at {Path(here[-1].filename).name}:{here[-1].lineno}"
                if here else "no message")
    return f"{type(exc).__name__}: {text}"


def run_all(configs: list[tuple[str, int]], rounds: int, plan: scenarios.Plan, work: Path,
            log: list[dict[str, Any]], run: Any, only: list[str] | None = None) -> None:
    """Every round over every configuration, one redis-server on a free port for them all."""
    with RedisServer(str(work / "redis"), unix_socket=False) as server:
        redis_pid = int(server.pid or 0)
        for round_no in range(1, rounds + 1):
            # Turn the order by one each round: no system always goes first or last.
            shift = (round_no - 1) % len(configs)
            for name, workers in configs[shift:] + configs[:shift]:
                flush = redis.Redis.from_url(server.url, socket_timeout=5)
                try:
                    flush.flushall()
                finally:
                    flush.close()
                system = systems.make(name, workers, server.url, redis_pid, work)
                print(f"round {round_no}/{rounds}: {system.label}", flush=True)
                try:
                    with system:
                        run(run_config(system, plan, round_no, log, only))
                except RuntimeError as exc:  # it did not start: say so, go on with the others
                    print(f"  could not start: {exc}", flush=True)
                    log.append({"round": round_no, "system": name, "workers": workers,
                                "scenario": "start", "error": str(exc)[:500]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="short phases, fewer clients, one round: about a minute")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (full: 2, quick: 1)")
    parser.add_argument("--only", nargs="+", choices=systems.SYSTEMS, default=None,
                        help="run these systems only")
    parser.add_argument("--workers", nargs="+", type=int, choices=(1, 2), default=None,
                        help="run these worker counts only")
    parser.add_argument("--scenarios", nargs="+", default=None,
                        help="run these scenarios only (names as in the report's JSON)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report and charts from the .json beside --output")
    parser.add_argument("--offer-deflate", action="store_true",
                        help="the clients offer permessage-deflate, as browsers do")
    args = parser.parse_args(argv)
    eio_client.Session.offer_deflate = args.offer_deflate
    json_path = args.output.with_suffix(".json")
    if args.report_only:
        report.write(args.output, json.loads(json_path.read_text()))
        return 0
    plan = scenarios.Plan.quick() if args.quick else scenarios.Plan.full()
    rounds = args.rounds or (1 if args.quick else 2)
    configs = [(name, w) for name, w in CONFIGS
               if (args.only is None or name in args.only)
               and (args.workers is None or w in args.workers)]
    command = "make bench-quick" if args.quick else "make bench"
    if args.only or args.workers or args.rounds or args.scenarios:
        command = "python tests/bench/suite.py " + " ".join(argv or sys.argv[1:])
    raise_fd_limit()
    interrupt_on_sigterm()
    run = event_loop_runner()
    began = time.monotonic()
    log: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="siobench-"))
    # Before any server starts: what both CPUs busy together do against one alone (a 2-worker
    # figure that one saturated process sets is bounded by that process's speed with the
    # other CPU busy). ~3 s.
    overlap = cpu_overlap.measure()
    print(f"CPU capacity: {overlap.headline()}", flush=True)
    info = report.machine_info(overlap)
    try:
        run_all(configs, rounds, plan, work, log, run, args.scenarios)
    finally:
        if args.keep_logs:
            print(f"server logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    data = {"info": info, "command": command, "quick": args.quick, "rounds": rounds,
            "plan": dataclasses.asdict(plan), "seconds": time.monotonic() - began,
            "cpu overlap": overlap.as_dict(), "results": log}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=1, default=float) + "\n")
    report.write(args.output, data)
    print(f"wrote {args.output} and {json_path} in {(time.monotonic() - began) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
