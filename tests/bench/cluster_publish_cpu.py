"""In-process client CPU per published message: a publisher's batch of 512 commands through
redis-py's plain pipeline (PUBLISH, one redis-server), its ``ClusterPipeline`` (SPUBLISH, a
3-master cluster) and sioctl's ``ClusterBatches`` (SPUBLISH, the same cluster).

Run from the repository root (under the machine-wide benchmark lock)::

    flock /tmp/sioctl-bench.lock .venv/bin/python tests/bench/cluster_publish_cpu.py [--rounds N]

Each round sends BATCHES batches through each of the three, in turn, to CHANNELS channels (one
per worker and the shared one, as a worker's publisher does); what is printed is this
process's CPU time (``time.process_time``) per message, medians over the rounds. Numbers are
printed, never judged (docs/benchmarks.md, "Redis Cluster"). Everything binds loopback and
every redis-server started here is stopped before the script exits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import redis  # noqa: E402

from sioctl.cluster.redis_server import RedisServer  # noqa: E402
from sioctl.worker.messaging.cluster_batches import ClusterBatches  # noqa: E402
from tests.support.redis_cluster import RedisClusterGroup  # noqa: E402

BATCH = 512
BATCHES = 100
CHANNELS = ["socketio"] + [f"socketio:w:{i:08x}" for i in range(8)]


def _batch(verb: str) -> list[tuple[Any, ...]]:
    return [(verb, CHANNELS[i % len(CHANNELS)], b"x" * 120) for i in range(BATCH)]


def _per_message(send: Callable[[list[tuple[Any, ...]]], Any], batch: list[tuple[Any, ...]]
                 ) -> float:
    """CPU µs per message over BATCHES sends of ``batch``."""
    send(batch)  # warm: connections, slot map, caches
    started = time.process_time()
    for _ in range(BATCHES):
        send(batch)
    return (time.process_time() - started) / (BATCHES * len(batch)) * 1e6


def _pipeline(client: Any) -> Callable[[list[tuple[Any, ...]]], Any]:
    def send(batch: list[tuple[Any, ...]]) -> Any:
        pipe = client.pipeline(transaction=False)
        for args in batch:
            pipe.execute_command(*args)
        return pipe.execute(raise_on_error=False)
    return send


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (5)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sioclustercpu"))
    results: dict[str, list[float]] = {"plain pipeline, PUBLISH": [],
                                       "ClusterPipeline, SPUBLISH": [],
                                       "ClusterBatches, SPUBLISH": []}
    group = RedisClusterGroup(work / "cluster")
    try:
        with RedisServer(str(work / "redis"), unix_socket=False) as server:
            single = redis.Redis.from_url(server.url)
            cluster = redis.RedisCluster(host="127.0.0.1", port=group.ports[0])
            sends = dict(zip(results, [
                (_pipeline(single), _batch("publish")),
                (_pipeline(cluster), _batch("spublish")),
                (ClusterBatches(cluster).send, _batch("spublish"))], strict=True))
            for number in range(1, args.rounds + 1):
                for name, (send, batch) in sends.items():
                    results[name].append(_per_message(send, batch))
                print(f"round {number}: " + ", ".join(
                    f"{name} {values[-1]:.2f} µs" for name, values in results.items()),
                    flush=True)
            single.close()
            cluster.close()
    finally:
        group.stop()
    for name, values in results.items():
        print(f"{name}: median {statistics.median(values):.2f} µs CPU per message "
              f"(rounds {', '.join(f'{v:.2f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
