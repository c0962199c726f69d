"""Rendering the master's status reply as text for ``sioctl status``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

COLUMNS = ("SLOT", "PID", "STATE", "UPTIME", "RESTARTS", "CONNS", "SESSIONS", "PENDING",
           "REFUSED",
           "REDIS", "QUEUED", "PUBLISHED", "DROPPED")
# Shown when a worker reports connection state recovery figures (recovery is on).
RECOVERY_COLUMNS = ("RECOVERED", "EXPIRED")


def human_duration(seconds: float | None) -> str:
    """``42s``, ``3m12s``, ``2h05m`` or ``3d04h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    if total < 86400:
        return f"{total // 3600}h{total % 3600 // 60:02d}m"
    return f"{total // 86400}d{total % 86400 // 3600:02d}h"


def _uptime(started_at: Any, now: float) -> str:
    if not isinstance(started_at, (int, float)) or started_at <= 0:
        return "-"
    return human_duration(now - started_at)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
    """Left-aligned columns two spaces apart."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    lines = []
    for row in (header, *rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
    return lines


def _redis_cells(messaging: Any) -> list[str]:
    """REDIS (``ok`` when subscribed, else ``down``), QUEUED, PUBLISHED, DROPPED; ``-`` for a
    worker without a Redis."""
    if not isinstance(messaging, dict):
        return ["-", "-", "-", "-"]
    state = "ok" if messaging.get("subscribed") else "down"
    return [state, _cell(messaging.get("queued")), _cell(messaging.get("published")),
            _cell(messaging.get("dropped"))]


def _recovery(slot: dict[str, Any]) -> dict[str, Any] | None:
    """The slot's connection state recovery figures (``messaging.recovery``), if any."""
    messaging = slot.get("messaging")
    figures = messaging.get("recovery") if isinstance(messaging, dict) else None
    return figures if isinstance(figures, dict) and figures else None


def _recovery_cells(slot: dict[str, Any]) -> list[str]:
    """RECOVERED (``recovered/attempted``) and EXPIRED (the attempts that found the session
    or the missed events gone) since the worker started; ``-`` for a worker without them."""
    figures = _recovery(slot)
    if figures is None:
        return ["-", "-"]
    return [f"{_cell(figures.get('recovered'))}/{_cell(figures.get('attempted'))}",
            _cell(figures.get("expired"))]


def embedded_redis_line(info: Any, now: float) -> str:
    """``redis-server pid 123, up 3m12s, 1 restart`` or ``redis-server down since 12:04:05
    (7s), 2 restarts``; empty when the cluster has no embedded Redis."""
    if not isinstance(info, dict):
        return ""
    restarts = info.get("restarts", 0)
    counted = f"{restarts} restart{'' if restarts == 1 else 's'}"
    since = info.get("since")
    if info.get("state") == "up":
        return f"redis-server pid {_cell(info.get('pid'))}, up {_uptime(since, now)}, {counted}"
    clock = time.strftime("%H:%M:%S", time.localtime(since)) if since else "?"
    starting = ", restarting" if info.get("state") == "starting" else ""
    return f"redis-server down since {clock} ({_uptime(since, now)}{starting}), {counted}"


def topology_line(slots: Sequence[dict[str, Any]]) -> str:
    """The Redis topology the workers report (the first that does): ``sentinel mymaster:
    master 127.0.0.1:6380``, ``cluster ok, 3 shards: 127.0.0.1:7000 (5461 slots), ...``, or
    ``cluster unreachable (ConnectionError)``; empty for a single Redis or none."""
    for slot in slots:
        messaging = slot.get("messaging")
        topology = messaging.get("topology") if isinstance(messaging, dict) else None
        if not isinstance(topology, dict) or topology.get("kind") in (None, "single"):
            continue
        kind, state = topology["kind"], topology.get("state", "?")
        if state == "unreachable":
            return f"{kind} unreachable ({topology.get('error', '?')})"
        if kind == "sentinel":
            return f"sentinel {topology.get('service')}: master {topology.get('master')}"
        shards = topology.get("shards") or []
        named = ", ".join(
            f"{s.get('master')} ({s.get('slots')} slots"
            f"{', ' + str(len(s['replicas'])) + ' replica(s)' if s.get('replicas') else ''})"
            for s in shards)
        return f"cluster {state}, {len(shards)} shard{'' if len(shards) == 1 else 's'}: {named}"
    return ""


def render(reply: dict[str, Any], now: float) -> str:
    """A header line for the cluster and a table of its worker slots."""
    title = reply.get("title", "?")
    uptime = _uptime(reply.get("started_at"), now)
    header = (
        f"{title}: master pid {_cell(reply.get('pid'))}, up {uptime}, {reply.get('state', '?')}"
    )
    if reply.get("version"):
        header += f", sioctl {reply['version']}"
    if reply.get("engine"):
        header += f", {reply['engine']} workers"
    binds = ", ".join(str(b) for b in reply.get("binds") or []) or "-"
    if reply.get("metrics"):
        binds += f"; metrics: {reply['metrics']}"
    lines = [header, f"  binds: {binds}", f"  redis: {reply.get('redis') or '-'}"]
    embedded = embedded_redis_line(reply.get("embedded_redis"), now)
    if embedded:
        lines[-1] += f"; {embedded}"
    slots = reply.get("slots") or []
    topology = topology_line(slots)
    if topology:
        lines[-1] += f"; {topology}"
    recovery = any(_recovery(slot) for slot in slots)
    rows = [
        [
            _cell(slot.get("slot")),
            _cell(slot.get("pid")),
            _cell(slot.get("state")),
            _uptime(slot.get("started_at"), now) if slot.get("pid") else "-",
            _cell(slot.get("restarts")),
            _cell(slot.get("connections")),
            _cell(slot.get("sessions")),
            _cell(slot.get("pending")),
            _cell(slot.get("refused")),
            *_redis_cells(slot.get("messaging")),
            *(_recovery_cells(slot) if recovery else []),
        ]
        for slot in slots
    ]
    lines.extend(table(rows, (*COLUMNS, *(RECOVERY_COLUMNS if recovery else ()))))
    return "\n".join(lines)
