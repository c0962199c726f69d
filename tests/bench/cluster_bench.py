"""Targeted cross-worker emits with sioctl's manager on one Redis vs a 3-shard Redis Cluster.

Run from the repository root (under the machine-wide benchmark lock)::

    flock /tmp/sioctl-bench.lock .venv/bin/python tests/bench/cluster_bench.py [--rounds N]

The storm of tests/bench/messaging_bench.py (a fresh 2-worker cluster per round; worker 0
emits SENDERS x EACH messages to a socket of worker 1 from concurrent green threads), on its
variant B (sioctl's SioctlRedisManager), with ``--redis`` either one redis-server or
``redis+cluster://`` on three masters (tests/support/redis_cluster.py). Rounds alternate
single, cluster, single... so that machine drift hits both alike. It prints, per round and as
medians, delivered messages per second, losses, and server CPU per message (master, workers
and every redis-server). Numbers are printed, never judged; the report is written by hand in
docs/benchmarks.md ("Redis Cluster"). Everything binds loopback and every process started here
is stopped before the script exits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent.parent
for _path in (str(REPO_ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import messaging_bench as mb  # noqa: E402
import redis  # noqa: E402

from sioctl.cluster.redis_server import RedisServer  # noqa: E402
from tests.support.redis_cluster import RedisClusterGroup  # noqa: E402


def run_round(kind: str, number: int, url: str, redis_pids: dict[str, int],
              flush: list[redis.Redis], log_dir: Path, senders: int, each: int) -> mb.Round:
    """One storm on a fresh 2-worker sioctl cluster joined through ``url``."""
    for client in flush:
        client.flushall()
    result = mb.Round(kind, number)
    log_path = log_dir / f"{kind}-{number}.log"
    cluster = mb.Cluster(mb.VARIANTS["B"][1], url, log_path)
    clients = []
    try:
        status = cluster.start()
        slots = {int(s["slot"]): int(s["pid"]) for s in status["slots"]}
        receiver = mb.connect_on_slot(cluster.port, 1)
        clients.append(receiver)
        trigger = mb.connect_on_slot(cluster.port, 0)
        clients.append(trigger)
        pids = {"worker 0 (sender)": slots[0], "worker 1 (receiver)": slots[1],
                "master": int(status["pid"]), **redis_pids}
        mb.warm_up(trigger, receiver)
        mb.measure(result, trigger, receiver, pids, senders, each)
    finally:
        for client in clients:
            client.close()
        cluster.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per topology (3)")
    parser.add_argument("--senders", type=int, default=240, help="concurrent green threads")
    parser.add_argument("--each", type=int, default=40, help="messages per sender")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="siocluster"))
    results: dict[str, list[mb.Round]] = {"single": [], "cluster": []}
    group = RedisClusterGroup(work / "cluster")
    try:
        with RedisServer(str(work / "redis"), unix_socket=False) as server:
            topologies = {
                "single": (server.url, {"redis-server": int(server.pid or 0)},
                           [redis.Redis.from_url(server.url, socket_timeout=5)]),
                "cluster": (group.url,
                            {f"redis-server {i}": p.pid
                             for i, p in enumerate(group.processes)},
                            [group.client(port) for port in group.ports]),
            }
            for number in range(1, args.rounds + 1):
                for kind, (url, pids, flush) in topologies.items():
                    r = run_round(kind, number, url, pids, flush, work, args.senders, args.each)
                    results[kind].append(r)
                    redis_cpu = sum(v for k, v in r.server_cpu.items()
                                    if k.startswith("redis"))
                    print(f"round {number} {kind}: {r.unique}/{r.sent} in {r.seconds:.2f}s ="
                          f" {r.rate:.0f} msgs/s, lost {r.lost}, dup {r.duplicates}, server"
                          f" CPU {r.cpu_per_message():.1f} µs/msg (redis"
                          f" {redis_cpu / max(r.unique, 1) * 1e6:.1f}), generator"
                          f" {r.own_load:.0%}", flush=True)
    finally:
        group.stop()
    for kind, rounds in results.items():
        rates = [r.rate for r in rounds]
        cpu = [r.cpu_per_message() for r in rounds]
        redis_cpu = [sum(v for k, v in r.server_cpu.items() if k.startswith("redis"))
                     / max(r.unique, 1) * 1e6 for r in rounds]
        print(f"{kind}: median {statistics.median(rates):.0f} msgs/s (rounds "
              f"{', '.join(f'{x:.0f}' for x in rates)}), server CPU "
              f"{statistics.median(cpu):.1f} µs/msg, redis {statistics.median(redis_cpu):.1f}"
              f" µs/msg, lost {sum(r.lost for r in rounds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
