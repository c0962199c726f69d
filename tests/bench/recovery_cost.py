"""What connection state recovery costs (issue 18): CPU per emit with recovery off vs on, and
Redis memory per buffered event and per session.

Run from the repository root::

    python tests/bench/recovery_cost.py [--quick] [--emits N] [--consumers C]

One redis-server on a free 127.0.0.1 port serves the run. Rounds alternate off, on, off, on
(2 each; --quick: 1) so that machine drift hits both alike. Each round starts a fresh 2-worker
cluster (``python -m sioctl start``) on tests.apps.chat, connects C websocket consumers (spread
over both workers) that join one room, and has one more client ask for N room emits
(``to_room``, fire and forget). It measures the CPU seconds of both workers and redis-server
(from /proc) until every consumer has every event, and with recovery on the Redis memory of the
recovery stream (MEMORY USAGE / XLEN) and of the session records. The report goes to
docs/benchmarks-recovery.md. Everything binds loopback, every wait is bounded, and every
process started here is stopped before the script exits. Numbers are reported, never judged.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent.parent
for _path in (str(REPO_ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import redis  # noqa: E402
from messaging_bench import Cluster, cpu_lines, measured_machine_info  # noqa: E402
from procstat import cpu_seconds  # noqa: E402

from sioctl.cluster.redis_server import RedisServer  # noqa: E402
from sioctl.worker.messaging import recovery  # noqa: E402
from tests.support.clients import ips_for_slot, make_client  # noqa: E402

APP = "tests.apps.chat:sio"
ROOM = "bench"
WINDOW = "120"
DELIVERY_TIMEOUT = 120.0
# Enough source addresses that each worker slot has half the consumers (the tests' eight,
# 127.0.0.2-9, put 5 on one slot and 3 on the other).
SOURCE_IPS = [f"127.0.1.{i}" for i in range(1, 255)]


@dataclass
class Round:
    recovery: bool
    emits: int
    consumers: int
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    delivered: int = 0
    stream_bytes: int = 0
    stream_entries: int = 0
    session_bytes: list[int] = field(default_factory=list)

    def cpu_per_emit_us(self, role: str | None = None) -> float:
        total = sum(v for k, v in self.cpu.items() if role is None or k == role)
        return total / self.emits * 1e6


def run_round(on: bool, emits: int, consumers: int, redis_url: str, redis_pid: int,
              work: Path) -> Round:
    cluster = Cluster(APP, redis_url, work / f"cluster-{'on' if on else 'off'}-{time.time()}.log")
    if on:
        cluster.argv += ["--connection-state-recovery", WINDOW]
    result = Round(on, emits, consumers)
    clients: list[Any] = []
    try:
        status = cluster.start()
        pids = {f"worker{s['slot']}": int(s["pid"]) for s in status["slots"]}
        url = f"http://127.0.0.1:{cluster.port}"
        counts = [0] * consumers
        done = threading.Event()
        lock = threading.Lock()
        for i in range(consumers):
            client = make_client(ips_for_slot(i % 2, 2, SOURCE_IPS)[i // 2], ("websocket",))
            clients.append(client)

            def heard(*_args: Any, index: int = i) -> None:
                with lock:
                    counts[index] += 1
                    if sum(counts) >= emits * consumers:
                        done.set()

            client.on("news", heard)
            client.connect(url)
            assert client.call("join", ROOM, timeout=10)
        producer = make_client("127.0.0.99", ("websocket",))
        clients.append(producer)
        producer.connect(url)
        time.sleep(0.5)  # the joins' record writes and owner records settle
        before = {role: cpu_seconds(pid) for role, pid in
                  {**pids, "redis": redis_pid}.items()}
        started = time.monotonic()
        for n in range(emits):
            producer.emit("to_room", {"room": ROOM, "data": n})
        done.wait(DELIVERY_TIMEOUT)
        result.seconds = time.monotonic() - started
        result.cpu = {role: cpu_seconds(pid) - before[role] for role, pid in
                      {**pids, "redis": redis_pid}.items()}
        result.delivered = sum(counts)
        if on:
            client = redis.Redis.from_url(redis_url)
            stream = recovery.stream_of("socketio")
            result.stream_entries = int(client.xlen(stream))
            result.stream_bytes = int(client.memory_usage(stream, samples=0) or 0)
            result.session_bytes = [int(client.memory_usage(key) or 0)
                                    for key in client.scan_iter("socketio#session#*")]
            client.delete(stream)
            client.close()
    finally:
        for client in clients:
            try:
                client.shutdown()
            except Exception:
                pass
        cluster.stop()
    return result


def write_report(path: Path, rounds: list[Round], info: dict[str, str], command: str) -> None:
    off = [r for r in rounds if not r.recovery]
    on = [r for r in rounds if r.recovery]

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    def workers(r: Round) -> float:
        return r.cpu_per_emit_us("worker0") + r.cpu_per_emit_us("worker1")

    def redis_cpu(r: Round) -> float:
        return r.cpu_per_emit_us("redis")

    per_event = med([r.stream_bytes / max(r.stream_entries, 1) for r in on])
    entries = med([float(r.stream_entries) for r in on])
    stream_kib = med([r.stream_bytes / 1024 for r in on])
    per_session = med([statistics.mean(r.session_bytes) for r in on if r.session_bytes])
    expected = rounds[0].emits * rounds[0].consumers
    cpus = cpu_lines(info)
    cpus += [""] if cpus else []  # their own paragraph
    lines = [
        "# Connection state recovery: the cost",
        "",
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC with `{command}` "
        f"(tests/bench/recovery_cost.py) on {info.get('model', '?')}, "
        f"{info.get('cpus', '?')} CPUs shared with other work; python "
        f"{info.get('python', '?')}, python-socketio {info.get('python-socketio', '?')}, "
        f"redis-server {info.get('redis-server', '?')}. Medians of {len(off)} round(s) each; "
        f"each round a fresh 2-worker eventlet cluster (tests.apps.chat), "
        f"{rounds[0].consumers} websocket consumers in one room over both workers, "
        f"{rounds[0].emits} room emits (`to_room`, fire and forget) from one more client.",
        "",
        *cpus,
        "| | recovery off | recovery on (120 s) |",
        "|---|---|---|",
        f"| CPU per emit, both workers (µs) | {med([workers(r) for r in off]):.0f} "
        f"| {med([workers(r) for r in on]):.0f} |",
        f"| CPU per emit, redis-server (µs) | {med([redis_cpu(r) for r in off]):.1f} "
        f"| {med([redis_cpu(r) for r in on]):.1f} |",
        f"| time until every consumer had every event (s) | {med([r.seconds for r in off]):.2f}"
        f" | {med([r.seconds for r in on]):.2f} |",
        f"| events delivered / expected | {min(r.delivered for r in off)} / {expected} "
        f"| {min(r.delivered for r in on)} / {expected} |",
        "",
        "Redis memory with recovery on:",
        "",
        f"- per buffered event (recovery stream MEMORY USAGE / XLEN; a small `news` event of "
        f"one int and its envelope): {per_event:.0f} B ({entries:.0f} entries, "
        f"{stream_kib:.0f} KiB); the stream holds at most about `--redis-stream-maxlen` "
        "entries (10 000 by default) and expires a window after its last event;",
        f"- per session record (one room, `{{\"remote_addr\": ...}}` as data): "
        f"{per_session:.0f} B, kept for the window after a disconnect.",
        "",
        "Where the CPU goes with recovery on: the emitting worker queues one XADD (and at most "
        "one PEXPIRE a second) instead of a PUBLISH, and every worker reads the entry back with "
        "a blocking XREAD and delivers it with its offset appended (python-socketio encodes the "
        "packet once per event on each worker, as without recovery); redis-server stores each "
        "event until trimmed.",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round each")
    parser.add_argument("--emits", type=int, default=3000)
    parser.add_argument("--consumers", type=int, default=8)
    parser.add_argument("--output", type=Path,
                        default=REPO_ROOT / "docs" / "benchmarks-recovery.md")
    args = parser.parse_args(argv)
    rounds_each = 1 if args.quick else 2
    results: list[Round] = []
    info = measured_machine_info()  # before any server starts
    with tempfile.TemporaryDirectory(prefix="sior") as tmp:
        work = Path(tmp)
        with RedisServer(str(work / "redis"), unix_socket=False) as server:
            for number in range(rounds_each):
                for on in (False, True):
                    print(f"round {number + 1}/{rounds_each}, recovery {'on' if on else 'off'}",
                          flush=True)
                    results.append(run_round(on, args.emits, args.consumers, server.url,
                                             int(server.pid or 0), work))
    command = "python tests/bench/recovery_cost.py" + (" --quick" if args.quick else "")
    write_report(args.output, results, info, command)
    print(args.output.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
