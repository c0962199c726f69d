"""The suite's report: docs/benchmarks.md (a table per scenario) and PNG charts beside it.

Takes the run's data as suite.py saves it in docs/benchmarks.json, so a report can be
rewritten without running anything (``suite.py --report-only``). Numbers are medians over the
rounds; nothing is judged against a threshold.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

from cpu_overlap import CpuOverlap
from procstat import cpu_model
from systems import LABELS, NGINX, NODE_DIR, REPO_ROOT, SYSTEMS

# Own CPU above this share of one core: the load generator (one process) may limit the rate.
SATURATED = 0.9
CPUS = os.cpu_count() or 1

SCENARIOS: dict[str, tuple[str, str]] = {
    "handoff": (
        "Connection hand-off",
        "Full Socket.IO connections (TCP, websocket upgrade, Engine.IO open, namespace connect,"
        " then close) per second, {handoff_concurrency} being opened at once for {seconds:g} s."
        " *front µs/conn* is the CPU of whatever owns the listening socket and passes the"
        " connection on (sioctl's master, the Node primary, nginx) per connection: the cost of"
        " the hand-off. The single python-socketio process is the straight-to-a-worker case."
        " *failed*: connections not established within 3 s (each holds one of the connectors"
        " for those 3 s, so a few of them lower the rate).",
    ),
    "echo-fixed": (
        "Echo with ack, fixed load",
        "{echo_clients} clients send `echo` with an ack, {echo_rate:g} msgs/s offered in all,"
        " evenly spaced, for {seconds:g} s. Latency: request to ack.",
    ),
    "echo-saturation": (
        "Echo with ack, saturation",
        "{echo_clients} clients each send their next `echo` as soon as the previous ack"
        " arrives, for {seconds:g} s.",
    ),
    "targeted": (
        "Targeted emit to a client on another worker",
        "{targeted_pairs} senders each keep {targeted_window} `send_to` requests in flight for"
        " {seconds:g} s; the server emits `msg` to the sid of a receiver served by another"
        " worker (with 1 worker: the same one). Latency: request to arrival at the receiver."
        " *lost*: acknowledged requests whose message never arrived; *duplicates*: messages that"
        " arrived more than once (counted once in msgs/s). *generator µs/msg*: the load"
        " generator's own CPU per delivered message (it sends the requests, reads the acks and"
        " the deliveries; at 2 workers it shares the cores with the servers, so what it spends"
        " lowers the 2-worker rate only). At 2 workers the rate is set by the worker that serves"
        " every sender: it is bounded by that process's speed while the other CPU is busy, not"
        " by its speed alone (see *CPU capacity* under Machine and versions). The window keeps"
        " that worker busy: with 2 requests in flight per sender it ran dry while the generator"
        " waited for a CPU (busy 85-99% of each second), and the figure followed where the"
        " kernel placed the generator (docs/benchmarks-optimizations.md, s32). The receivers"
        " read as they go and parse after the measurement (eio_client.Recorder; latency to the"
        " read that brought the message), and the senders write each request from a template"
        " and count its ack undecoded.",
    ),
    "targeted-crossed": (
        "Targeted emit, both workers sending",
        "As above, but half the senders are on each of two workers, each sending to a receiver"
        " on the other: every message still crosses workers, and each worker both publishes"
        " and delivers, as an app's traffic spreads (above, one worker only publishes and the"
        " other only delivers). With 1 worker the same as above.",
    ),
    "broadcast": (
        "Broadcast fan-out",
        "{broadcast_clients} clients spread over the workers; one asks for {broadcasts}"
        " broadcasts, at most {broadcast_window} unacknowledged at a time. Deliveries per"
        " second from the first request to the last arrival; latency: request to each"
        " arrival. The receivers read as they go and parse after the measurement"
        " (eio_client.Recorder), which keeps the load generator's CPU per delivery down.",
    ),
    "idle-1k": ("Idle connections, 1k", "Memory (PSS) of all server processes per held"
                " websocket session, 1000 sessions."),
    "idle-10k": ("Idle connections, 10k", "As above with 10 000 sessions (or as many as the"
                 " system held within the time bound: *held*)."),
}
# The metric each chart shows, left panel then right panel.
CHARTS = {
    "handoff": ("conn/s", "front µs/conn"),
    "echo-fixed": ("p99 ms", "server µs/msg"),
    "echo-saturation": ("msgs/s", "server µs/msg"),
    "targeted": ("msgs/s", "server µs/msg"),
    "targeted-crossed": ("msgs/s", "server µs/msg"),
    "broadcast": ("deliveries/s", "server µs/delivery"),
    "idle-1k": ("KiB/conn", "server µs/conn"),
    "idle-10k": ("KiB/conn", "held"),
}
HEADLINE = [("handoff", "conn/s"), ("handoff", "front µs/conn"), ("echo-saturation", "msgs/s"),
            ("echo-saturation", "server µs/msg"), ("targeted", "msgs/s"),
            ("broadcast", "deliveries/s"), ("idle-10k", "KiB/conn"), ("idle-1k", "KiB/conn")]


# ------------------------------------------------------------------------- machine


def _first_line(argv: list[str]) -> str:
    """The first output line of ``argv`` (stdout or stderr), or why there is none."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    return ((done.stdout or done.stderr).strip().splitlines() or ["unknown"])[0]


def machine_info(overlap: CpuOverlap | None = None) -> dict[str, str]:
    """The machine, the date and the versions of everything the run used; with ``overlap``
    (``cpu_overlap.measure()``, taken before any server started) also what the CPUs do
    together against one alone ("CPU capacity") and each CPU's speed ("CPU speed")."""
    model = cpu_model()
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "cpu model": model,
    }
    if overlap is not None:
        info["CPU capacity"] = overlap.headline()
        info["CPU speed"] = overlap.detail()
    info |= {
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sioctl commit": _first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short",
                                      "HEAD"]),
        "node": _first_line(["node", "--version"]),
        "nginx": _first_line([NGINX, "-v"]).replace("nginx version: ", ""),
        "redis-server": _first_line(["redis-server", "--version"]).split(" sha=")[0],
    }
    # hiredis: redis-py's C reply parser, used by every redis-py client of a process that can
    # import it (the systems on Redis read their replies with it when it is installed).
    for dist in ("python-socketio", "python-engineio", "eventlet", "redis", "hiredis", "uvloop",
                 "uvicorn"):
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = "not installed"
    for package in ("socket.io", "@socket.io/sticky", "@socket.io/cluster-adapter"):
        try:
            meta = json.loads((NODE_DIR / "node_modules" / package / "package.json").read_text())
            info[f"npm {package}"] = meta["version"]
        except (OSError, ValueError, KeyError):
            info[f"npm {package}"] = "not installed"
    return info


# ---------------------------------------------------------------------------- numbers


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "–"
    if value == int(value) and abs(value) < 1e6:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _configs(results: list[dict[str, Any]]) -> list[tuple[str, int]]:
    found = {(r["system"], int(r["workers"])) for r in results}
    return sorted(found, key=lambda c: (c[1], SYSTEMS.index(c[0])))


def _label(config: tuple[str, int]) -> str:
    return f"{LABELS[config[0]]}, {config[1]}w"


class Table:
    """The successful records of one scenario, by configuration."""

    def __init__(self, results: list[dict[str, Any]], scenario: str) -> None:
        self.records = [r for r in results if r["scenario"] == scenario and "metrics" in r]
        self.errors = [r for r in results if r["scenario"] == scenario and "error" in r]
        self.metrics: list[str] = []
        for r in self.records:
            for key in r["metrics"]:
                if key not in self.metrics:
                    self.metrics.append(key)

    def of(self, config: tuple[str, int]) -> list[dict[str, Any]]:
        return [r for r in self.records if (r["system"], int(r["workers"])) == config]

    def median(self, config: tuple[str, int], metric: str) -> float:
        """The median of ``metric`` over the rounds of ``config``."""
        return _median([float(r["metrics"].get(metric, math.nan)) for r in self.of(config)])

    def usage(self, config: tuple[str, int], what: str) -> float:
        """Median of a usage figure: 'server cores', 'generator', 'machine'."""
        values = []
        for r in self.of(config):
            u = r["usage"]
            if what == "server cores":
                values.append(sum(u["roles"].values()) / u["seconds"] if u["seconds"] else 0.0)
            elif what == "generator":
                values.append(u["own"] / u["seconds"] if u["seconds"] else 0.0)
            elif what == "other":
                # Busy CPUs that were neither the servers nor the generator: other load.
                cores = u["machine_busy"] * CPUS
                ours = (sum(u["roles"].values()) + u["own"]) / u["seconds"] if u["seconds"] else 0
                values.append(max(0.0, cores - ours))
            else:
                values.append(u["machine_busy"])
        return _median(values)

    def saturated(self, config: tuple[str, int]) -> bool:
        """True when the load generator used ≥ SATURATED of a core in any round."""
        return any(r["usage"]["seconds"] and r["usage"]["own"] / r["usage"]["seconds"]
                   >= SATURATED for r in self.of(config))


def scenario_table(results: list[dict[str, Any]], scenario: str) -> list[str]:
    """The markdown table of ``scenario``: one row per configuration."""
    table = Table(results, scenario)
    if not table.records:
        return ["No successful measurement.", ""]
    header = ["system"] + table.metrics + ["server CPU (cores)", "generator (core)",
                                           "other load (cores)"]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|--:" * (len(header) - 1) + "|"]
    for config in _configs(table.records):
        cells = [_label(config)] + [_fmt(table.median(config, m)) for m in table.metrics]
        generator = _fmt(table.usage(config, "generator"))
        if table.saturated(config):
            generator += " ⚠"
        cells += [_fmt(table.usage(config, "server cores")), generator,
                  _fmt(table.usage(config, "other"))]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for r in table.records:
        for note in r.get("notes", []):
            lines.append(f"- round {r['round']}, {_label((r['system'], r['workers']))}: {note}")
    for r in table.errors:
        lines.append(f"- round {r['round']}, {_label((r['system'], r['workers']))}: **failed**:"
                     f" {r['error']}")
    if lines[-1] != "":
        lines.append("")
    return lines


def headline(results: list[dict[str, Any]]) -> list[str]:
    """One row per configuration, one column per headline figure."""
    tables = {s: Table(results, s) for s, _ in HEADLINE}
    header = ["system"] + [f"{s}: {m}" for s, m in HEADLINE]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|--:" * len(HEADLINE) + "|"]
    for config in _configs(results):
        cells = [_label(config)]
        for scenario, metric in HEADLINE:
            value = _fmt(tables[scenario].median(config, metric))
            if tables[scenario].saturated(config):
                value += " ⚠"
            cells.append(value)
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def ratios(results: list[dict[str, Any]]) -> list[str]:
    """sioctl's headline figures divided by each alternative's, at the same worker count."""
    tables = {s: Table(results, s) for s, _ in HEADLINE}
    configs = _configs(results)
    pairs = [(("sioctl", w), other) for other in configs if other[0] != "sioctl"
             for w in (other[1],) if ("sioctl", w) in configs]
    if not pairs:
        return []
    header = ["figure"] + [f"sioctl {w}w ÷ {_label(other)}" for (_, w), other in pairs]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|--:" * len(pairs) + "|"]
    for scenario, metric in HEADLINE:
        cells = [f"{scenario}: {metric}"]
        for mine, other in pairs:
            a, b = tables[scenario].median(mine, metric), tables[scenario].median(other, metric)
            cells.append("–" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


# The asyncio engine's targets (issue 15), each a ratio of two configurations' medians in one
# run: (label, scenario, metric, mine, theirs, goal: "≤ x", "≥ x" or None).
TARGETS = [
    ("server CPU per echo, saturation: sioctl asyncio 2w ÷ uvicorn 1 process", "echo-saturation",
     "server µs/msg", ("sioctl-asyncio", 2), ("uvicorn", 1), "≤ 1"),
    ("server CPU per echo, fixed load: sioctl asyncio 2w ÷ uvicorn 1 process", "echo-fixed",
     "server µs/msg", ("sioctl-asyncio", 2), ("uvicorn", 1), "≤ 1"),
    ("memory per idle websocket (1k): sioctl asyncio 1w ÷ sioctl eventlet 1w", "idle-1k",
     "KiB/conn", ("sioctl-asyncio", 1), ("sioctl", 1), "≤ 0.7"),
    ("memory per idle websocket (1k): sioctl asyncio 2w ÷ sioctl eventlet 2w", "idle-1k",
     "KiB/conn", ("sioctl-asyncio", 2), ("sioctl", 2), "≤ 0.7"),
    ("memory per idle websocket (10k): sioctl asyncio 1w ÷ sioctl eventlet 1w", "idle-10k",
     "KiB/conn", ("sioctl-asyncio", 1), ("sioctl", 1), "≤ 0.7"),
    ("memory per idle websocket (10k): sioctl asyncio 2w ÷ sioctl eventlet 2w", "idle-10k",
     "KiB/conn", ("sioctl-asyncio", 2), ("sioctl", 2), "≤ 0.7"),
    ("memory per idle websocket (1k): sioctl asyncio 1w ÷ uvicorn 1 process", "idle-1k",
     "KiB/conn", ("sioctl-asyncio", 1), ("uvicorn", 1), None),
]


# Issue 19's targets that are ratios of two configurations, on both engines, and the latency at
# the echo saturation point beside Node's.
ISSUE19_TARGETS = [
    ("server CPU per echo, saturation: sioctl 2w ÷ python-socketio 1 process", "echo-saturation",
     "server µs/msg", ("sioctl", 2), ("python-socketio", 1), "≤ 0.8"),
    ("server CPU per echo, fixed load: sioctl 2w ÷ python-socketio 1 process", "echo-fixed",
     "server µs/msg", ("sioctl", 2), ("python-socketio", 1), "≤ 0.8"),
    ("server CPU per echo, saturation: sioctl asyncio 2w ÷ python-socketio 1 process",
     "echo-saturation", "server µs/msg", ("sioctl-asyncio", 2), ("python-socketio", 1), "≤ 0.8"),
    ("server CPU per echo, fixed load: sioctl asyncio 2w ÷ python-socketio 1 process",
     "echo-fixed", "server µs/msg", ("sioctl-asyncio", 2), ("python-socketio", 1), "≤ 0.8"),
    ("server CPU per broadcast delivery: sioctl 2w ÷ python-socketio 1 process", "broadcast",
     "server µs/delivery", ("sioctl", 2), ("python-socketio", 1), "≤ 0.6"),
    ("server CPU per broadcast delivery: sioctl asyncio 2w ÷ python-socketio 1 process",
     "broadcast", "server µs/delivery", ("sioctl-asyncio", 2), ("python-socketio", 1), "≤ 0.6"),
    ("targeted emits: sioctl 2w ÷ sioctl 1w", "targeted", "msgs/s", ("sioctl", 2),
     ("sioctl", 1), "≥ 1"),
    ("targeted emits: sioctl asyncio 2w ÷ sioctl asyncio 1w", "targeted", "msgs/s",
     ("sioctl-asyncio", 2), ("sioctl-asyncio", 1), "≥ 1"),
    ("targeted emits, both workers sending: sioctl 2w ÷ sioctl 1w", "targeted-crossed",
     "msgs/s", ("sioctl", 2), ("sioctl", 1), "≥ 1"),
    ("targeted emits, both workers sending: sioctl asyncio 2w ÷ sioctl asyncio 1w",
     "targeted-crossed", "msgs/s", ("sioctl-asyncio", 2), ("sioctl-asyncio", 1), "≥ 1"),
    ("p99 at the echo saturation point: sioctl 2w ÷ Node.js cluster 2w", "echo-saturation",
     "p99 ms", ("sioctl", 2), ("node", 2), None),
    ("p99 at the echo saturation point: sioctl asyncio 2w ÷ Node.js cluster 2w",
     "echo-saturation", "p99 ms", ("sioctl-asyncio", 2), ("node", 2), None),
    ("p99 at the echo saturation point: sioctl 1w ÷ Node.js cluster 1w", "echo-saturation",
     "p99 ms", ("sioctl", 1), ("node", 1), None),
    ("p99 at the echo saturation point: sioctl asyncio 1w ÷ Node.js cluster 1w",
     "echo-saturation", "p99 ms", ("sioctl-asyncio", 1), ("node", 1), None),
]


def targets(results: list[dict[str, Any]], wanted: list[Any] = TARGETS) -> list[str]:
    """Targets (``TARGETS`` by default) as ratios of this run's medians (rows whose two
    configurations both ran), each with the ratio of every round in which both ran."""
    lines = ["| ratio | mine | theirs | ratio | rounds | target |",
             "|---|--:|--:|--:|--:|--:|"]
    for label, scenario, metric, mine, theirs, goal in wanted:
        table = Table(results, scenario)
        a, b = table.median(mine, metric), table.median(theirs, metric)
        if math.isnan(a) or math.isnan(b) or b == 0:
            continue
        lines.append(f"| {label} ({metric}) | {_fmt(a)} | {_fmt(b)} | {a / b:.2f} |"
                     f" {_round_ratios(table, metric, mine, theirs)} | {goal or '–'} |")
    return lines + [""] if len(lines) > 2 else []


def _round_ratios(table: Table, metric: str, mine: tuple[str, int],
                  theirs: tuple[str, int]) -> str:
    """``mine ÷ theirs`` of ``metric`` round by round, where both measured it."""
    by_round = {r["round"]: r["metrics"].get(metric, math.nan) for r in table.of(theirs)}
    ratios = [r["metrics"].get(metric, math.nan) / by_round[r["round"]]
              for r in table.of(mine) if by_round.get(r["round"])]
    return ", ".join(f"{x:.2f}" for x in ratios if not math.isnan(x)) or "–"


def other_load(results: list[dict[str, Any]]) -> str:
    """A sentence on the CPU that other processes took during the measured phases."""
    values = []
    for r in results:
        u = r.get("usage")
        if u and u["seconds"]:
            ours = (sum(u["roles"].values()) + u["own"]) / u["seconds"]
            values.append(max(0.0, u["machine_busy"] * CPUS - ours))
    if not values:
        return ""
    return (f"- Other load (processes that were neither servers nor the generator): median"
            f" {_median(values):.2f} cores, at most {max(values):.2f} cores of {CPUS}, over the"
            " measured phases.")


def generator_notes(results: list[dict[str, Any]]) -> list[str]:
    """Where the load generator or the machine may have limited what was measured."""
    notes = []
    for scenario in SCENARIOS:
        table = Table(results, scenario)
        busy = [c for c in _configs(table.records) if table.saturated(c)]
        if busy:
            notes.append(f"- **{SCENARIOS[scenario][0]}**: the load generator used ≥"
                         f" {SATURATED:.0%} of a core with " + ", ".join(map(_label, busy))
                         + ": there it may be what limits the rate (marked ⚠).")
        top = max((table.usage(c, "machine") for c in _configs(table.records)), default=0.0)
        if top >= 0.95:
            notes.append(f"- **{SCENARIOS[scenario][0]}**: the machine was ≥ 95% busy (all CPUs"
                         " together) in some configurations: servers and generator competed"
                         " for the cores.")
    if not notes:
        notes.append(f"- The load generator stayed below {SATURATED:.0%} of a core in every"
                     " measurement.")
    if other_load(results):
        notes.append(other_load(results))
    for scenario in SCENARIOS:
        table = Table(results, scenario)
        for config in _configs(table.records):
            for metric in ("failed", "lost", "unanswered", "duplicates"):
                total = sum(float(r["metrics"].get(metric, 0.0)) for r in table.of(config))
                if total > 0:
                    notes.append(f"- **{SCENARIOS[scenario][0]}**, {_label(config)}: {metric}"
                                 f" {total:,.0f} over {len(table.of(config))} round(s).")
    return notes


# ----------------------------------------------------------------------------- charts


def charts(out_dir: Path, results: list[dict[str, Any]]) -> list[str]:
    """Draw one PNG per scenario into ``out_dir``; returns their file names (none without
    matplotlib, which is an optional dependency: the `bench` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    names = []
    for scenario, panels in CHARTS.items():
        table = Table(results, scenario)
        if not table.records:
            continue
        configs = _configs(table.records)
        systems_here = [s for s in SYSTEMS if any(c[0] == s for c in configs)]
        fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6))
        for ax, metric in zip(axes, panels, strict=True):
            for offset, workers in enumerate((1, 2)):
                xs = [i + (offset - 0.5) * 0.38 for i in range(len(systems_here))]
                ys = [table.median((s, workers), metric) for s in systems_here]
                ax.bar(xs, [0 if math.isnan(y) else y for y in ys], width=0.36,
                       label=f"{workers} worker{'s' if workers > 1 else ''}")
            ax.set_xticks(range(len(systems_here)))
            ax.set_xticklabels([LABELS[s].replace(" + ", "\n+ ").replace(" (", "\n(")
                                for s in systems_here], fontsize=7)
            ax.set_title(metric, fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(SCENARIOS[scenario][0], fontsize=10)
        fig.tight_layout()
        name = f"bench-{scenario}.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names


# ----------------------------------------------------------------------------- report


def write(path: Path, data: dict[str, Any]) -> None:
    """Write the markdown report of a run (``data`` as suite.py saves it) and its charts."""
    info, results, plan = data["info"], data["results"], data["plan"]
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures = set(charts(path.parent, results))
    mode = "quick mode (short phases, fewer clients)" if data["quick"] else "full mode"
    lines = [
        "# Benchmarks: sioctl and the alternatives",
        "",
        "Written by `tests/bench/suite.py`; regenerate with",
        "",
        f"    {data['command']}",
        "",
        f"Run on {info['date']} in {mode}, {data['rounds']} round(s), "
        f"{data['seconds'] / 60:.1f} minutes in all. Each figure is the median over the rounds."
        " Rounds go through every system once, in an order that turns by one each round.",
        "",
        "## Systems",
        "",
        "- **python-socketio (1 process)**: `socketio.Server` + `socketio.WSGIApp` served by"
        " `eventlet.wsgi` (`tests/bench/pyserve.py`), in-memory manager.",
        "- **nginx hash + python-socketio**: nginx (`worker_processes auto`) with `hash"
        " $remote_addr consistent` over N such processes sharing python-socketio's stock"
        " `RedisManager`.",
        "- **Node.js cluster**: node `cluster` + `@socket.io/sticky` (least-connection) +"
        " `@socket.io/cluster-adapter` (`tests/bench/node/server.js`), N workers.",
        "- **sioctl**: `python -m sioctl start tests.bench.apps.bench_app:sio -w N` (with"
        " `--redis` when N > 1; in-memory with 1 worker, sioctl's default).",
        "- **uvicorn + AsyncServer (1 process)**: `uvicorn tests.bench.apps.bench_async_app:app`,"
        " a `socketio.AsyncServer` in a `socketio.ASGIApp`, in-memory manager: what FastAPI"
        " users run today (uvicorn's `--workers` has no sticky sessions).",
        "- **sioctl asyncio**: the same AsyncServer app on sioctl's asyncio engine, `-w N`"
        " (sioctl's asyncio Redis manager when N > 1).",
        "",
        "All serve the same events (`tests/bench/apps/bench_app.py`, its AsyncServer twin"
        " `bench_async_app.py`, mirrored in JS), bind"
        " 127.0.0.1 and hold up to 20 000 connections per process. The clients come from 1016"
        " source addresses 127.1.x.y, so IP-hashing systems spread them over the workers.",
        "",
        "## How it is measured",
        "",
        "- The load generator is one Python process (asyncio"
        + (" on uvloop" if info.get("uvloop", "not installed") != "not installed" else "")
        + ") speaking raw Engine.IO v4 / Socket.IO v5 over websockets"
        " (`tests/bench/eio_client.py`). Its own CPU is reported as *generator (core)*; ⚠"
        f" marks ≥ {SATURATED:.0%} of a core, where it may limit the rate.",
        "- The Python systems on Redis (nginx's python-socketio processes, sioctl at 2"
        " workers) read Redis's replies with "
        + (f"hiredis {info['hiredis']} (redis-py's C parser: the `hiredis` extra)"
           if info.get("hiredis", "not installed") != "not installed"
           else "redis-py's own parser (hiredis not installed)")
        + ".",
        "- *server CPU*: user + system CPU seconds from `/proc/PID/stat` of every server-side"
        " process (workers, master or primary, nginx master and workers, redis-server when the"
        " system uses it) over the measured phase; *server µs/msg* divides it by the messages"
        " (or deliveries, or connections) that the clients saw. *server CPU (cores)* is the"
        " same over the phase's wall time.",
        "- *other load (cores)*: CPUs busy over the phase (`/proc/stat`) beyond the servers and"
        " the generator: whatever else ran on the machine meanwhile (it adds noise; compare"
        " systems within a table, whose rounds alternated).",
        "- Memory: the PSS (`/proc/PID/smaps_rollup`) of all server processes, after minus"
        " before opening the sessions, per session held.",
        # (runs from before cpu_overlap.py have no such figure)
        *(["- *CPU capacity* and *CPU speed* (Machine and versions): measured before any"
           " server started by `tests/bench/cpu_overlap.py` (one process pinned to each CPU"
           " running a Python loop, each alone and all at once): what all CPUs busy together do"
           " against one alone (2 CPUs: 2.00 for independent cores, ~1.3 for SMT siblings), and"
           " how fast each CPU was (a virtual machine's vCPUs can differ, and slow down for"
           " seconds)."] if "CPU capacity" in info else []),
        "",
        "## Headline",
        "",
    ]
    lines += headline(results)
    lines += ["⚠: the load generator used ≥ 90% of a core there (see the end of the report).",
              "", "Ratios (above 1: sioctl's figure is the larger; for µs/msg and KiB/conn"
              " smaller is better):", ""]
    lines += ratios(results)
    goals = targets(results)
    if goals:
        lines += ["## The asyncio engine's targets (issue 15)", "",
                  "Ratios of this run's medians; the server CPU of sioctl counts its master"
                  " and, with 2 workers, redis-server and both workers.", ""] + goals
    issue19_goals = targets(results, ISSUE19_TARGETS)
    if issue19_goals:
        lines += ["## Issue 19's targets, and latency beside Node", "",
                  "Ratios of this run's medians, and of each round. At the echo saturation point"
                  " every client waits for its ack before sending again, so the latency follows"
                  " the rate each system reaches (clients ÷ msgs/s), i.e. its CPU per message.",
                  ""] + issue19_goals
    for scenario, (title, text) in SCENARIOS.items():
        if not any(r["scenario"] == scenario for r in results):
            continue
        lines += [f"## {title}", "", text.format(**plan), ""]
        lines += scenario_table(results, scenario)
        picture = f"bench-{scenario}.png"
        if picture in pictures:
            lines += [f"![{title}]({picture})", ""]
    lines += ["## Load generator, machine and failures", ""] + generator_notes(results) + [""]
    starts = [r for r in results if r["scenario"] == "start"]
    if starts:
        lines += ["## Systems that did not start", ""]
        lines += [f"- round {r['round']}, {_label((r['system'], r['workers']))}: {r['error']}"
                  for r in starts] + [""]
    if not pictures:
        lines += ["(No charts: matplotlib is not installed; `pip install -e '.[bench]'`.)", ""]
    lines += ["## Machine and versions", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()] + [""]
    path.write_text("\n".join(lines))
