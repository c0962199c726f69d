"""The fixed cost of a system: CPU per process role while it serves nothing, and while it holds
idle websockets (issue 19: the cluster's fixed cost is what the second worker adds per echo).

Run from the repository root::

    python tests/bench/idle_cost.py [--systems sioctl sioctl-asyncio uvicorn]
                                    [--workers 2] [--seconds 10] [--sessions 0 50]

Starts each system (one redis-server for those that use it), waits for it to settle, then
measures the CPU milliseconds per second of each role (front: sioctl's master; workers; redis)
over ``--seconds``, first with no client, then with ``--sessions`` idle websockets open (the
echo scenarios' 50 clients hold that many). Every server binds 127.0.0.1; everything started
is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parents[1]
for _path in (str(REPO_ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import procstat  # noqa: E402
import scenarios  # noqa: E402
import systems  # noqa: E402
from suite import event_loop_runner, raise_fd_limit  # noqa: E402

from sioctl.cluster.redis_server import RedisServer  # noqa: E402


def measure(system: systems.System, seconds: float) -> dict[str, float]:
    """CPU ms per second of each role of ``system`` over ``seconds``."""
    roles = system.roles()
    before = {role: sum(procstat.cpu_seconds(p) for p in pids) for role, pids in roles.items()}
    time.sleep(seconds)
    return {role: (sum(procstat.cpu_seconds(p) for p in pids) - before[role]) / seconds * 1e3
            for role, pids in roles.items()}


async def hold(system: systems.System, count: int, seconds: float) -> dict[str, float]:
    """Open ``count`` idle websockets, measure, close them."""
    sessions, _ = await scenarios.open_sessions(system.port, count, scenarios.source_ips(),
                                                scenarios.now() + 30.0)
    try:
        await asyncio.sleep(1.0)
        return await asyncio.get_running_loop().run_in_executor(None, measure, system, seconds)
    finally:
        scenarios.close_all(sessions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", choices=sorted(systems.CLASSES),
                        default=["sioctl", "sioctl-asyncio"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sessions", nargs="+", type=int, default=[0, 50])
    args = parser.parse_args(argv)
    raise_fd_limit()
    run = event_loop_runner()
    out = Path(tempfile.mkdtemp(prefix="sioidle-"))
    with RedisServer(str(out / "redis"), unix_socket=False) as redis_server:
        for name in args.systems:
            workers = args.workers if name.startswith("sioctl") else 1
            system = systems.make(name, workers, redis_server.url, int(redis_server.pid or 0),
                                  out)
            with system:
                time.sleep(2.0)  # past the start's own work
                for count in args.sessions:
                    figures = (measure(system, args.seconds) if count == 0
                               else run(hold(system, count, args.seconds)))
                    shown = ", ".join(f"{role} {ms:.1f}" for role, ms in figures.items())
                    print(f"{name} {workers}w, {count} idle websockets: CPU ms/s: {shown}, "
                          f"total {sum(figures.values()):.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
