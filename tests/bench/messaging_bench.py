"""Targeted cross-worker emits: python-socketio's stock RedisManager (A) vs sioctl's manager (B).

Run from the repository root::

    python tests/bench/messaging_bench.py [--quick]

One redis-server on a free 127.0.0.1 port serves the whole run. Rounds alternate A, B, A, B...
(3 each; --quick: 1) so that machine drift hits both alike. Each round starts a fresh 2-worker
cluster (``python -m sioctl start``) on the messaging test app, connects a receiver to worker 1
and a trigger to worker 0, and has worker 0 emit SENDERS x EACH messages to the receiver from
SENDERS concurrent green threads. It measures delivered messages per second, loss and
duplicates, and the CPU seconds that the server-side processes (master, both workers,
redis-server) and the load generator spent, read from /proc. The report goes to
docs/benchmarks-messaging.md. Everything binds loopback, every wait is bounded, and every
process started here is stopped before the script exits. Numbers are reported, never judged.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import importlib.metadata
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
TESTS_DIR = BENCH_DIR.parent
REPO_ROOT = TESTS_DIR.parent
for _path in (str(REPO_ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import cpu_overlap  # noqa: E402
import redis  # noqa: E402
from procstat import CLK_TCK, cpu_model, cpu_seconds, machine_ticks  # noqa: E402
from raw_client import RawClient  # noqa: E402

from sioctl.cluster.control import ControlError, request  # noqa: E402
from sioctl.cluster.redis_server import RedisServer, find_redis_server  # noqa: E402
from tests.support.clients import free_port, ips_for_slot, pid_alive, wait_for_exit  # noqa: E402

WORKERS = 2
VARIANTS = {
    "A": ("python-socketio RedisManager (stock)", "tests.bench.apps.stock:sio"),
    "B": ("sioctl SioctlRedisManager", "tests.apps.messaging:sio"),
}
CANDIDATE_IPS = [f"127.0.0.{i}" for i in range(2, 40)]
BOOT_TIMEOUT = 30.0
# A round ends when every message arrived, after QUIET seconds without one, or at DEADLINE.
QUIET = 3.0
DEADLINE = 120.0
# How often the receive loop samples the CPU counters (the sample right after the last
# arrival closes the measurement, so idle time adds at most this much).
SAMPLE_EVERY = 0.1
STOP_TIMEOUT = 40.0
# Own CPU above this fraction of one core: the load generator may be what limits the rate.
SATURATED = 0.9


# ----------------------------------------------------------------------------- /proc


@dataclass
class Sample:
    """CPU counters at one moment."""

    at: float
    servers: dict[str, float]
    own: float
    machine: tuple[int, int]


def sample(pids: dict[str, int]) -> Sample:
    """The CPU counters of ``pids`` ({role: pid}), of this process and of the machine, now."""
    times = os.times()
    return Sample(
        at=time.monotonic(),
        servers={role: cpu_seconds(pid) for role, pid in pids.items()},
        own=times.user + times.system,
        machine=machine_ticks(),
    )


# --------------------------------------------------------------------------- cluster


class Cluster:
    """A ``python -m sioctl start`` master in the foreground, with WORKERS workers."""

    def __init__(self, app: str, redis_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.title = f"bench{self.port}"
        self.run_base = tempfile.mkdtemp(prefix="siob")
        self.control = os.path.join(self.run_base, self.title, "control.sock")
        self.log_path = log_path
        self.argv = [
            sys.executable, "-m", "sioctl", "start", app, "-w", str(WORKERS),
            "-b", f"127.0.0.1:{self.port}", "--redis", redis_url,
            "--run-dir", self.run_base, "--title", self.title,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.worker_pids: set[int] = set()

    def start(self) -> dict[str, Any]:
        """Start the master; returns its status once every worker is ready."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            status = self.status()
            slots = (status or {}).get("slots", [])
            if (status and status.get("state") == "running" and len(slots) == WORKERS
                    and all(s.get("state") == "ready" and s.get("pid") for s in slots)):
                return status
            time.sleep(0.1)
        raise RuntimeError(f"cluster did not become ready; see {self.log_path}")

    def status(self) -> dict[str, Any] | None:
        """The master's status, or None while it does not answer."""
        try:
            reply = request(self.control, {"cmd": "status"}, timeout=2.0)
        except (ControlError, OSError):
            return None
        for slot in reply.get("slots", []):
            if slot.get("pid"):
                self.worker_pids.add(int(slot["pid"]))
        return reply

    def stop(self) -> None:
        """Stop the master (SIGTERM, then SIGKILL) and make sure no worker outlives it."""
        if self.proc is not None and self.proc.poll() is None:
            self.status()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in wait_for_exit(sorted(self.worker_pids), 10.0):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.run_base, ignore_errors=True)


# ---------------------------------------------------------------------------- rounds


@dataclass
class Round:
    """What one round measured."""

    variant: str
    number: int
    sent: int = 0
    received: int = 0
    unique: int = 0
    seconds: float = 0.0
    server_cpu: dict[str, float] = field(default_factory=dict)
    own_cpu: float = 0.0
    window: float = 0.0
    machine_busy: float = 0.0
    restarts: int = 0
    log_lines: dict[str, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.sent - self.unique

    @property
    def duplicates(self) -> int:
        return self.received - self.unique

    @property
    def rate(self) -> float:
        return self.unique / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_total(self) -> float:
        return sum(self.server_cpu.values())

    def cpu_per_message(self, role: str | None = None) -> float:
        """Server CPU microseconds per delivered message (all roles, or one)."""
        cpu = self.cpu_total if role is None else self.server_cpu.get(role, 0.0)
        return cpu / self.unique * 1e6 if self.unique else float("nan")

    @property
    def own_load(self) -> float:
        """The load generator's CPU as a fraction of one core."""
        return self.own_cpu / self.window if self.window > 0 else 0.0


# Log lines worth counting: how each manager reports trouble.
# (python-socketio puts the redis-py error, e.g. "Too many connections", in the record's
# `extra`, which the log format does not show.)
LOG_MARKERS = {
    "Cannot receive from redis (listener rebuilt)": "Cannot receive from redis",
    "Cannot publish ... giving up": "giving up",
    "Cannot publish ... retrying": "retrying",
    "tracebacks": "Traceback",
}


def count_log_lines(path: Path) -> dict[str, int]:
    """How many lines of the cluster log hold each of LOG_MARKERS."""
    counts = dict.fromkeys(LOG_MARKERS, 0)
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return counts
    for line in text.splitlines():
        for name, marker in LOG_MARKERS.items():
            if marker in line:
                counts[name] += 1
    return counts


@contextlib.contextmanager
def pumping(client: RawClient) -> Iterator[None]:
    """Keep answering ``client``'s pings from a thread while the block runs."""
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            try:
                client.pump(0.5)
            except Exception:  # the session ended: nothing left to answer
                return

    thread = threading.Thread(target=pump, name="trigger-pings", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5.0)


def connect_on_slot(port: int, slot: int) -> RawClient:
    """A client that the master serves from ``slot`` (checked with the app's whoami)."""
    for ip in ips_for_slot(slot, WORKERS, CANDIDATE_IPS):
        client = RawClient("127.0.0.1", port, ip)
        answer = client.call("whoami", None)
        if answer.get("slot") == slot:
            return client
        client.close()
    raise RuntimeError(f"no candidate address lands on slot {slot}")


def run_round(variant: str, number: int, redis_url: str, redis_pid: int, log_dir: Path,
              senders: int, each: int) -> Round:
    """Start a cluster of ``variant``, measure one storm of senders x each targeted emits."""
    result = Round(variant, number)
    flush = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        flush.flushall()
    finally:
        flush.close()
    log_path = log_dir / f"{variant}-{number}.log"
    cluster = Cluster(VARIANTS[variant][1], redis_url, log_path)
    clients: list[RawClient] = []
    try:
        status = cluster.start()
        slots = {int(s["slot"]): int(s["pid"]) for s in status["slots"]}
        receiver = connect_on_slot(cluster.port, 1)
        clients.append(receiver)
        trigger = connect_on_slot(cluster.port, 0)
        clients.append(trigger)
        pids = {"worker 0 (sender)": slots[0], "worker 1 (receiver)": slots[1],
                "master": int(status["pid"]), "redis-server": redis_pid}
        warm_up(trigger, receiver)
        measure(result, trigger, receiver, pids, senders, each)
        final = cluster.status() or {}
        result.restarts = sum(int(s.get("restarts", 0)) for s in final.get("slots", []))
    finally:
        for client in clients:
            client.close()
        cluster.stop()
    result.log_lines = count_log_lines(log_path)
    return result


def warm_up(trigger: RawClient, receiver: RawClient, n: int = 20) -> None:
    """Send a few messages end to end first, so both managers have their connections open."""
    tag = f"warm-{uuid.uuid4().hex[:8]}"
    trigger.call("send_to", {"to": receiver.sid, "n": n, "tag": tag})
    got = 0
    deadline = time.monotonic() + 10.0
    while got < n and time.monotonic() < deadline:
        event = receiver.next_event(1.0)
        if event and event[0] == "msg" and event[1].get("tag") == tag:
            got += 1


def measure(result: Round, trigger: RawClient, receiver: RawClient, pids: dict[str, int],
            senders: int, each: int) -> None:
    """Fire the storm and receive it; fills ``result``."""
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    order = {"senders": senders, "each": each, "pause": 0, "tag": tag, "to": receiver.sid}
    counts: collections.Counter[int] = collections.Counter()
    before = sample(pids)
    started = before.at
    result.sent = int(trigger.call("storm", order))
    samples = [before]
    last_arrival = started
    with pumping(trigger):
        while True:
            event = receiver.next_event(SAMPLE_EVERY)
            now = time.monotonic()
            if event is not None and event[0] == "msg" and event[1].get("tag") == tag:
                counts[int(event[1]["i"])] += 1
                last_arrival = now
            if now - samples[-1].at >= SAMPLE_EVERY:
                samples.append(sample(pids))
            if len(counts) >= result.sent:
                samples.append(sample(pids))
                break
            if now - last_arrival > QUIET or now - started > DEADLINE:
                break
    after = next(s for s in samples if s.at >= last_arrival)
    result.received = sum(counts.values())
    result.unique = len(counts)
    result.seconds = last_arrival - started
    result.server_cpu = {role: after.servers[role] - before.servers[role] for role in pids}
    result.own_cpu = after.own - before.own
    result.window = after.at - before.at
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1]
    result.machine_busy = busy / total if total else 0.0


# ---------------------------------------------------------------------------- report


def machine_info(overlap: cpu_overlap.CpuOverlap | None = None) -> dict[str, str]:
    """The machine and software the run used; with ``overlap`` (``cpu_overlap.measure()``,
    taken before any server started) also what the CPUs did then (``cpu_lines``)."""
    model = cpu_model()
    versions = {}
    for dist in ("sioctl", "python-socketio", "python-engineio", "eventlet", "redis",
                 "websocket-client"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    try:
        out = subprocess.run([find_redis_server(), "--version"], capture_output=True,
                             text=True, timeout=10).stdout
        redis_version = next((w.split("=", 1)[1] for w in out.split() if w.startswith("v=")),
                             out.strip())
    except Exception as exc:  # the report still says what failed
        redis_version = f"unknown ({exc})"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis-server": redis_version,
        **versions,
        **({"CPU capacity": overlap.headline(), "CPU speed": overlap.detail()}
           if overlap is not None else {}),
    }


def measured_machine_info() -> dict[str, str]:
    """:func:`machine_info` with what the CPUs do, measured now (call it before any server
    starts) and said on stdout as it is known."""
    info = machine_info(cpu_overlap.measure())
    print(f"CPU capacity: {info['CPU capacity']}", flush=True)
    return info


def cpu_lines(info: dict[str, str]) -> list[str]:
    """The report's lines on what the CPUs did before the run (none when not measured): a
    2-worker figure moves with how fast the vCPU of its busiest process is."""
    return [f"- {key}: {info[key]}" for key in ("CPU capacity", "CPU speed") if key in info]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(b: float, a: float) -> str:
    if a == 0 or a != a or b != b:
        return "–"
    return f"{b / a:.2f}"


def metric_table(title: str, unit: str, rounds: list[Round], value: Callable[[Round], float],
                 fmt: str, note: str = "") -> list[str]:
    """A markdown table: one row per round pair, then the medians, with B/A."""
    a = [r for r in rounds if r.variant == "A"]
    b = [r for r in rounds if r.variant == "B"]
    lines = [f"### {title}", ""]
    if note:
        lines += [note, ""]
    lines += [f"| round | A: stock ({unit}) | B: sioctl ({unit}) | B/A |", "|---|--:|--:|--:|"]
    for i in range(max(len(a), len(b))):
        va = value(a[i]) if i < len(a) else float("nan")
        vb = value(b[i]) if i < len(b) else float("nan")
        lines.append(f"| {i + 1} | {va:{fmt}} | {vb:{fmt}} | {ratio(vb, va)} |")
    ma, mb = median([value(r) for r in a]), median([value(r) for r in b])
    lines += [f"| **median** | **{ma:{fmt}}** | **{mb:{fmt}}** | **{ratio(mb, ma)}** |", ""]
    return lines


def per_role(role: str) -> Callable[[Round], float]:
    """A metric: server CPU microseconds per delivered message spent by ``role``."""
    return lambda r: r.cpu_per_message(role)


def write_report(path: Path, rounds: list[Round], info: dict[str, str], command: str,
                 senders: int, each: int, elapsed: float) -> None:
    """Write the markdown report of ``rounds`` to ``path``."""
    total = senders * each
    roles = list(rounds[0].server_cpu) if rounds else []
    lines = [
        "# Cross-worker targeted emits: stock RedisManager vs sioctl's manager",
        "",
        "Written by `tests/bench/messaging_bench.py`; regenerate with",
        "",
        f"    {command}",
        "",
        f"Run on {info['date']}, {elapsed / 60:.1f} minutes in all.",
        "",
        "## What is measured",
        "",
        f"- Two-worker sioctl clusters (`python -m sioctl start -w {WORKERS}`) on one"
        " redis-server, all on 127.0.0.1. Rounds alternate A, B, A, B... with a fresh cluster"
        " each (Redis is flushed between rounds).",
        "- **A**: the messaging test app with `socketio.RedisManager(url)` as its own manager"
        " (python-socketio's defaults; sioctl keeps an app's own manager)."
        " **B**: the same app under sioctl's `SioctlRedisManager`.",
        "- A receiver (a raw Engine.IO/Socket.IO websocket speaker) is served by worker 1, a"
        " trigger by worker 0. The trigger asks worker 0 to emit to the receiver's sid from"
        f" {senders} concurrent green threads, {each} messages each ({total} per round), with"
        " no pause; after 20 warm-up messages. One direction only: worker 1 publishes"
        " nothing, so a listener that the sending worker rebuilds loses nothing here.",
        "- **msgs/s**: distinct messages received / time from the trigger's request to the last"
        f" arrival. A round ends when all arrived, after {QUIET:g} s without one, or after"
        f" {DEADLINE:g} s.",
        "- **lost** = sent − distinct received; **duplicates** = received − distinct received.",
        "- **CPU per message**: user+system CPU from `/proc/<pid>/stat` of the master, both"
        " workers and redis-server, from just before the trigger's request to the first"
        f" sample after the last arrival (sampled every {SAMPLE_EVERY:g} s), divided by the"
        f" distinct messages delivered. Clock tick: 1/{CLK_TCK} s.",
        "- **Load generator**: this script's own CPU over the same window, as a fraction of one"
        f" core (it is one Python process; above {SATURATED:.0%} it may limit the rate).",
        "",
        "## Machine and versions",
        "",
        f"- CPU: {info['model']}, {info['cpus']} logical CPUs (`nproc`); Linux {info['kernel']}",
        *cpu_lines(info),
        f"- Python {info['python']}, redis-server {info['redis-server']}",
        "- " + ", ".join(f"{k} {info[k]}" for k in ("sioctl", "python-socketio",
                                                       "python-engineio", "eventlet", "redis",
                                                       "websocket-client")),
        "",
        "## Results",
        "",
    ]
    lines += metric_table("Delivered messages per second", "msgs/s", rounds,
                          lambda r: r.rate, ".0f")
    lines += metric_table("Lost messages", f"of {total}", rounds,
                          lambda r: float(r.lost), ".0f")
    lines += metric_table("Duplicated messages", "count", rounds,
                          lambda r: float(r.duplicates), ".0f")
    lines += metric_table("Server CPU per delivered message", "µs", rounds,
                          lambda r: r.cpu_per_message(), ".1f",
                          "Master + both workers + redis-server.")
    for role in roles:
        lines += metric_table(f"CPU per delivered message: {role}", "µs", rounds,
                              per_role(role), ".1f")
    lines += metric_table("Load generator CPU", "share of one core", rounds,
                          lambda r: r.own_load, ".2f")
    lines += metric_table("Machine busy during the measurement", "share of all CPUs", rounds,
                          lambda r: r.machine_busy, ".2f")
    lines += ["## Per round", "",
              "| round | variant | sent | received | distinct | seconds | server CPU s |"
              " generator CPU s | worker restarts | log lines |",
              "|---|---|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in rounds:
        logged = ", ".join(f"{k}: {v}" for k, v in r.log_lines.items() if v) or "–"
        lines.append(f"| {r.number} | {r.variant} | {r.sent} | {r.received} | {r.unique} |"
                     f" {r.seconds:.2f} | {r.cpu_total:.2f} | {r.own_cpu:.2f} | {r.restarts} |"
                     f" {logged} |")
    lines += ["", "## Observations", ""] + observations(rounds)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def observations(rounds: list[Round]) -> list[str]:
    """Plain statements drawn from the numbers (no thresholds, no verdicts)."""
    notes = []
    for variant, (label, _) in VARIANTS.items():
        mine = [r for r in rounds if r.variant == variant]
        if not mine:
            continue
        lost = sum(r.lost for r in mine)
        sent = sum(r.sent for r in mine)
        dups = sum(r.duplicates for r in mine)
        notes.append(f"- {variant} ({label}): lost {lost} of {sent} messages"
                     f" ({lost / sent:.1%}) over {len(mine)} round(s), {dups} duplicates.")
        loud = collections.Counter[str]()
        for r in mine:
            loud.update(r.log_lines)
        logged = ", ".join(f"{k} ×{v}" for k, v in loud.items() if v)
        if logged:
            notes.append(f"  Its cluster logs held: {logged}.")
        roles = list(mine[0].server_cpu)
        shares = {role: median([r.server_cpu[role] / r.window for r in mine if r.window > 0])
                  for role in roles}
        top_role = max(shares, key=lambda role: shares[role])
        notes.append(f"  Busiest server process: {top_role}, at {shares[top_role]:.0%} of one"
                     " core (median over the measurement window).")
        notes.append(f"  The machine was busy {median([r.machine_busy for r in mine]):.0%} of all"
                     " CPUs (median): server processes and load generator share them.")
        busy = [r for r in mine if r.own_load >= SATURATED]
        if busy:
            notes.append(f"  The load generator used ≥ {SATURATED:.0%} of a core in"
                         f" {len(busy)} round(s): the receiving side may limit the rate there.")
        else:
            top = max(r.own_load for r in mine)
            notes.append(f"  The load generator used at most {top:.0%} of one core.")
    return notes


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round per variant")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per variant (3)")
    parser.add_argument("--senders", type=int, default=240, help="concurrent green threads")
    parser.add_argument("--each", type=int, default=40, help="messages per sender")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs"
                        / "benchmarks-messaging.md", help="report path")
    parser.add_argument("--keep-logs", action="store_true", help="keep the cluster logs")
    args = parser.parse_args(argv)
    rounds_each = args.rounds or (1 if args.quick else 3)
    command = "python tests/bench/messaging_bench.py" + (" --quick" if args.quick else "")
    if args.rounds or args.senders != 240 or args.each != 40:
        command += f" --rounds {rounds_each} --senders {args.senders} --each {args.each}"
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="siobench"))
    results: list[Round] = []
    info = measured_machine_info()
    redis_pid = 0
    try:
        with RedisServer(str(work / "redis"), unix_socket=False) as server:
            redis_pid = int(server.pid or 0)
            for number in range(1, rounds_each + 1):
                for variant in VARIANTS:
                    print(f"round {number}/{rounds_each}, {variant}: {VARIANTS[variant][0]}",
                          flush=True)
                    r = run_round(variant, number, server.url, redis_pid, work,
                                  args.senders, args.each)
                    results.append(r)
                    print(f"  {r.unique}/{r.sent} distinct in {r.seconds:.2f}s = {r.rate:.0f}"
                          f" msgs/s, lost {r.lost}, dup {r.duplicates}, server CPU"
                          f" {r.cpu_per_message():.1f} µs/msg, generator {r.own_load:.0%}"
                          f" of a core", flush=True)
    finally:
        if args.keep_logs:
            print(f"cluster logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if redis_pid and pid_alive(redis_pid):
        print(f"warning: redis-server {redis_pid} still runs", file=sys.stderr)
    write_report(args.output, results, info, command, args.senders, args.each,
                 time.monotonic() - began)
    print(f"report written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
