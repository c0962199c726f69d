"""Disconnect storms with the gateway's presence notices on and off (issue 16).

Run from the repository root::

    python tests/bench/presence_bench.py [--quick] [--clients 500] [--rounds 3]

Each round starts a fresh 2-worker cluster (``python -m sioctl start``) of a generated app
directory whose only difference between the variants is ``gateway = {"presence": ...}``:

- **off**: no notices (``presence: False``), the cost of a disconnect without them;
- **on**: the default, each disconnect looks its userId up in the registry (``resolve``) and
  publishes its ``disconnect`` notice to its peers (``presence.announce_disconnect``).

``--clients`` raw websocket clients (``eio_client.py``, from 127.1.x.y addresses) connect, half
served by worker 0 (stayers), half by worker 1 (leavers); every leaver and its stayer exchange a
signed ``sendToOthers`` both ways, so each is the other's peer. Then every leaver resets its
connection at once. Measured from the resets until worker 1 has no session left and, with
notices, every stayer has heard its leaver's ``disconnect`` (or QUIET seconds without one):
the seconds, the CPU of each server process (``/proc``) per disconnect, and the Redis commands
per disconnect (``INFO commandstats``). Rounds alternate off, on, off, on... on one
redis-server on a free loopback port; the report (docs/benchmarks-presence.md) gives on/off
ratios. Every wait is bounded, every process started here is stopped, numbers are reported,
never judged.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import messaging_bench as mb  # noqa: E402  (sets sys.path for the repository too)
import redis  # noqa: E402
from eio_client import Session, connect  # noqa: E402

from sioctl.cluster.redis_server import RedisServer  # noqa: E402
from sioctl.worker.gateway.wire import (  # noqa: E402
    DISCONNECT,
    REQUEST_MESSAGE,
    RESPONSE_MESSAGE,
    SAVE_ID,
    SEND_TO_OTHERS,
    signed_request,
)
from tests.support.clients import ips_for_slot  # noqa: E402

APP, KEY = "benchApp", "bench-app-key"
CANDIDATES = [f"127.1.{i}.{j}" for i in range(1, 5) for j in range(1, 250)]
ADDRESSES_PER_SLOT = 40
CONNECT_AT_ONCE = 50
STEP_TIMEOUT = 60.0
QUIET = 5.0
# After the storm: longer than the workers' heartbeat to the master (its status is that
# old), so the window closes after the last disconnect for both variants alike.
SETTLE = 1.5
STORM_DEADLINE = 120.0
VARIANTS = {"off": False, "on": True}
# Commands sent on a timer, whatever the storm does: the gateway's refresh (PEXPIRE, SET of
# the alive key), the socket owner records (SET), the sweep (SMEMBERS, EXISTS); and HELLO, a
# client connection opened (the pools grow with concurrency, not per disconnect). Commands a
# Lua script runs are counted too (INFO commandstats does).
PERIODIC = {"pexpire", "set", "smembers", "exists", "hello"}


@dataclass
class Storm:
    """What one round measured."""

    variant: str
    number: int
    leavers: int = 0
    notices: int = 0
    seconds: float = 0.0
    server_cpu: dict[str, float] = field(default_factory=dict)
    redis_commands: collections.Counter[str] = field(default_factory=collections.Counter)

    def commands(self, periodic: bool = False) -> int:
        """Redis commands in the window; without ``periodic``, those the renewals and the
        dead-worker sweep send on their own clock (they land in some windows, not others)."""
        return sum(n for name, n in self.redis_commands.items()
                   if periodic or name not in PERIODIC)

    def per_disconnect(self, value: float) -> float:
        return value / self.leavers if self.leavers else float("nan")


def make_app(root: Path, presence: bool) -> Path:
    """An app directory serving only the gateway, with presence notices on or off."""
    (root / "config").mkdir(parents=True)
    (root / "app").mkdir()
    (root / "app" / "router.py").write_text("def setup(app):\n    pass\n")
    (root / "config" / "config_default.py").write_text(
        f"socket_config = {{{APP!r}: {{'key': {KEY!r}}}}}\n"
        f"gateway = {{'presence': {presence!r}}}\n")
    return root


def redis_calls(client: redis.Redis) -> collections.Counter[str]:
    """The commands the redis-server has run so far, by name."""
    stats = client.info("commandstats")
    return collections.Counter({name.removeprefix("cmdstat_"): int(entry["calls"])
                                for name, entry in stats.items()})


class Peer:
    """A raw client's gateway side: its userId (from saveId) and the notices it hears."""

    def __init__(self) -> None:
        self.user_id = ""
        self.saved = asyncio.Event()
        self.notices = 0
        self.session: Session | None = None

    def on_event(self, session: Session, name: str, data: Any) -> None:
        if name != RESPONSE_MESSAGE or not isinstance(data, dict):
            return
        action = data.get("data", {}).get("action")
        if action == SAVE_ID:
            self.user_id = data["data"]["payload"]["userId"]
            self.saved.set()
        elif action == DISCONNECT:
            self.notices += 1


async def connect_peers(port: int, ips: list[str], n: int) -> list[Peer]:
    """``n`` connected peers from ``ips`` (round robin), each with its userId."""
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    peers = [Peer() for _ in range(n)]

    async def one(i: int) -> None:
        async with gate:
            peer = peers[i]
            peer.session = await connect("127.0.0.1", port, ips[i % len(ips)],
                                         on_event=peer.on_event)
            await asyncio.wait_for(peer.saved.wait(), STEP_TIMEOUT)

    await asyncio.gather(*(one(i) for i in range(n)))
    return peers


async def exchange(a: Peer, b: Peer) -> None:
    """A signed sendToOthers each way: each becomes the other's peer."""
    for sender, target in ((a, b), (b, a)):
        assert sender.session is not None
        ack = await asyncio.wait_for(sender.session.call(REQUEST_MESSAGE, signed_request(
            SEND_TO_OTHERS, APP, KEY, payload="hi", target=target.user_id)), STEP_TIMEOUT)
        if not (isinstance(ack, dict) and ack.get("success")):
            raise RuntimeError(f"sendToOthers refused: {ack}")


async def storm(cluster: mb.Cluster, pids: dict[str, int], stayers: list[Peer],
                leavers: list[Peer], presence: bool, counter: redis.Redis,
                result: Storm) -> None:
    """Reset every leaver at once; measure until worker 1 is empty and the notices are in."""
    loop = asyncio.get_running_loop()
    calls = redis_calls(counter)
    before = mb.sample(pids)
    for peer in leavers:
        assert peer.session is not None
        peer.session.abort()
    last_change, heard = time.monotonic(), 0
    while True:
        await asyncio.sleep(0.05)
        status = await loop.run_in_executor(None, cluster.status) or {}
        left = {int(s["slot"]): int(s.get("sessions", 0)) for s in status.get("slots", [])}
        now_heard = sum(p.notices for p in stayers)
        if now_heard != heard:
            heard, last_change = now_heard, time.monotonic()
        done = left.get(1, 1) == 0 and (not presence or heard >= len(leavers))
        if done or time.monotonic() - last_change > QUIET \
                or time.monotonic() - before.at > STORM_DEADLINE:
            break
    result.seconds = (last_change if presence else time.monotonic()) - before.at
    await asyncio.sleep(SETTLE)
    after = mb.sample(pids)
    result.notices = heard
    result.server_cpu = {role: after.servers[role] - before.servers[role] for role in pids}
    result.redis_commands = redis_calls(counter) - calls
    result.redis_commands.pop("info", None)  # the counting itself


async def run_round(variant: str, number: int, clients: int, redis_url: str, redis_pid: int,
                    log_dir: Path) -> Storm:
    """One fresh cluster of ``variant``: connect, pair, storm."""
    result = Storm(variant, number)
    counter = redis.Redis.from_url(redis_url, socket_timeout=5)
    counter.flushall()
    app_root = Path(tempfile.mkdtemp(prefix="siopres"))
    cluster = mb.Cluster(str(make_app(app_root / "app", VARIANTS[variant])), redis_url,
                         log_dir / f"{variant}-{number}.log")
    peers: list[Peer] = []
    try:
        status = cluster.start()
        slots = {int(s["slot"]): int(s["pid"]) for s in status["slots"]}
        pids = {"worker 0 (stayers)": slots[0], "worker 1 (leavers)": slots[1],
                "master": int(status["pid"]), "redis-server": redis_pid}
        pairs = clients // 2
        stayers = await connect_peers(cluster.port, ips_for_slot(
            0, mb.WORKERS, CANDIDATES)[:ADDRESSES_PER_SLOT], pairs)
        leavers = await connect_peers(cluster.port, ips_for_slot(
            1, mb.WORKERS, CANDIDATES)[:ADDRESSES_PER_SLOT], pairs)
        peers = stayers + leavers
        gate = asyncio.Semaphore(CONNECT_AT_ONCE)

        async def pair(a: Peer, b: Peer) -> None:
            async with gate:
                await exchange(a, b)

        await asyncio.gather(*(pair(a, b) for a, b in zip(stayers, leavers, strict=True)))
        result.leavers = len(leavers)
        await storm(cluster, pids, stayers, leavers, VARIANTS[variant], counter, result)
    finally:
        for peer in peers:
            if peer.session is not None:
                peer.session.abort()
        counter.close()
        cluster.stop()
        shutil.rmtree(app_root, ignore_errors=True)
    return result


def table(title: str, unit: str, rounds: list[Storm], value: Any, fmt: str) -> list[str]:
    """One row per round pair and the medians, with the on/off ratio."""
    off = [r for r in rounds if r.variant == "off"]
    on = [r for r in rounds if r.variant == "on"]
    lines = [f"### {title}", "", f"| round | off ({unit}) | on ({unit}) | on/off |",
             "|---|--:|--:|--:|"]
    for i in range(max(len(off), len(on))):
        a = value(off[i]) if i < len(off) else float("nan")
        b = value(on[i]) if i < len(on) else float("nan")
        lines.append(f"| {i + 1} | {a:{fmt}} | {b:{fmt}} | {mb.ratio(b, a)} |")
    ma, mo = mb.median([value(r) for r in off]), mb.median([value(r) for r in on])
    lines += [f"| **median** | **{ma:{fmt}}** | **{mo:{fmt}}** | **{mb.ratio(mo, ma)}** |", ""]
    return lines


def write_report(path: Path, rounds: list[Storm], info: dict[str, str], command: str,
                 clients: int, elapsed: float) -> None:
    roles = list(rounds[0].server_cpu) if rounds else []
    lines = [
        "# Disconnect storms: the gateway's presence notices on and off",
        "", "Written by `tests/bench/presence_bench.py`; regenerate with", "",
        f"    {command}", "", f"Run on {info['date']}, {elapsed / 60:.1f} minutes in all.", "",
        "## What is measured", "",
        "- Two-worker sioctl clusters of a generated gateway app on one redis-server, all on"
        " 127.0.0.1; rounds alternate off, on, off, on... on fresh clusters (Redis flushed).",
        "- **off**: `gateway = {'presence': False}`; **on**: the default (connect / disconnect"
        " notices to exchange peers).",
        f"- {clients} raw websocket clients: {clients // 2} on worker 0 (stayers), {clients // 2}"
        " on worker 1 (leavers), each leaver paired with a stayer by a signed `sendToOthers`"
        " each way. Then every leaver resets its connection at once.",
        "- **seconds** (per round, no ratio: the two ends differ): *on*, from the resets to the"
        " last `disconnect` notice heard; *off*, to the master's status showing worker 1 empty"
        " (the workers report about once a second, so it is coarse). A round also ends after"
        f" {QUIET:g} s without progress.",
        "- **CPU per disconnect**: user+system CPU (`/proc/<pid>/stat`) of each server process"
        f" from the resets to {SETTLE:g} s after that end (idle time costs both variants"
        " alike), divided by the leavers. **Redis commands per disconnect**: the"
        " redis-server's `INFO commandstats` calls over the window, divided likewise (the"
        " sweep for dead workers, every 2 s per worker with sockets, is in it).",
        "", "## Machine and versions", "",
        f"- CPU: {info['model']}, {info['cpus']} logical CPUs; Linux {info['kernel']}",
        *mb.cpu_lines(info),
        f"- Python {info['python']}, redis-server {info['redis-server']}",
        "- " + ", ".join(f"{k} {info[k]}" for k in ("sioctl", "python-socketio",
                                                       "python-engineio", "eventlet", "redis")),
        "", "## Results", "",
    ]
    lines += table("Server CPU per disconnect", "µs", rounds,
                   lambda r: r.per_disconnect(sum(r.server_cpu.values())) * 1e6, ".0f")
    for role in roles:
        lines += table(f"CPU per disconnect: {role}", "µs", rounds,
                       lambda r, role=role: r.per_disconnect(r.server_cpu[role]) * 1e6, ".0f")
    lines += table("Redis commands per disconnect", "calls", rounds,
                   lambda r: r.per_disconnect(r.commands()), ".1f")
    lines += ["Without the commands sent on a timer and connection set-ups (" +
              ", ".join(sorted(PERIODIC)).upper() + "), which land in some windows and not in"
              " others; the commands a Lua script runs count (one EVAL of unregister is EVAL,"
              " HGET, DEL, HDEL, GET, DEL). All of them per round below.", ""]
    lines += ["## Per round", "", "| round | variant | leavers | notices heard | seconds |"
              " server CPU s | Redis commands (all, by name) |", "|---|---|--:|--:|--:|--:|---|"]
    for r in rounds:
        named = ", ".join(f"{k} {v}" for k, v in sorted(r.redis_commands.items()) if v)
        lines.append(f"| {r.number} | {r.variant} | {r.leavers} | {r.notices} |"
                     f" {r.seconds:.2f} | {sum(r.server_cpu.values()):.2f} |"
                     f" {r.commands(periodic=True)}: {named} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1 round per variant")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per variant")
    parser.add_argument("--clients", type=int, default=500, help="clients (half leave)")
    parser.add_argument("--output", type=Path,
                        default=mb.REPO_ROOT / "docs" / "benchmarks-presence.md")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    rounds_each = 1 if args.quick else args.rounds
    log_dir = Path(tempfile.mkdtemp(prefix="siopreslog"))
    started = time.monotonic()
    info = mb.measured_machine_info()  # before any server starts
    work = Path(tempfile.mkdtemp(prefix="siopresredis"))
    rounds: list[Storm] = []
    with RedisServer(str(work / "redis"), unix_socket=False) as server:
        for number in range(1, rounds_each + 1):
            for variant in VARIANTS:
                result = asyncio.run(run_round(variant, number, args.clients, server.url,
                                               int(server.pid or 0), log_dir))
                rounds.append(result)
                print(f"round {number} {variant}: {result.leavers} leavers,"
                      f" {result.notices} notices, {result.seconds:.2f} s,"
                      f" cpu {sum(result.server_cpu.values()):.2f} s,"
                      f" redis {dict(result.redis_commands)}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    command = "python tests/bench/presence_bench.py" + (" --quick" if args.quick else "")
    write_report(args.output, rounds, info, command, args.clients,
                 time.monotonic() - started)
    print(f"report: {args.output}")
    if args.keep_logs:
        print(f"logs: {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
