"""What the fan-out test apps emit, whatever their engine (tests/apps/fanout.py on
socketio.Server, tests/apps/asyncfanout.py on socketio.AsyncServer). Imports no engine."""

from __future__ import annotations

import os
from typing import Any


def slot() -> int:
    """This worker's slot (SIOCTL_WORKER_SLOT)."""
    return int(os.environ.get("SIOCTL_WORKER_SLOT", "-1"))


def burst_plan(sid: str, order: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """The emits a ``burst`` order asks for, in order, each as (data, emit keyword arguments):
    ``n`` numbered 'seq' events to ``room`` (every client of the namespace when None; the
    sender left out when ``skip_self``), each with ``size`` bytes of padding (binary
    attachments when ``binary``), and after every fourth one the same number to each socket of
    ``direct_to`` alone (marked ``direct``): a targeted emit between two broadcasts."""
    plan: list[tuple[Any, dict[str, Any]]] = []
    size = int(order.get("size", 0))
    for i in range(int(order["n"])):
        data: dict[str, Any] = {"i": i}
        if size:
            data["pad"] = bytes([i % 256]) * size if order.get("binary") else "x" * size
        elif order.get("binary"):
            data["bin"] = bytes([i % 256, 1, 2])
        options: dict[str, Any] = {"to": order.get("room")}
        if order.get("skip_self"):
            options["skip_sid"] = sid
        plan.append((data, options))
        if i % 4 == 3:
            for target in order.get("direct_to") or []:
                plan.append(({"i": i, "direct": True}, {"to": target}))
    return plan
