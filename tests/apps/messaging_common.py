"""What the messaging test apps answer, whatever their engine: tests/apps/messaging.py
(socketio.Server on sioctl's eventlet workers) and tests/apps/async_messaging.py
(socketio.AsyncServer on sioctl's asyncio workers). Imports no engine: the sync one would
pick eventlet."""

from __future__ import annotations

import os
from typing import Any


def slot() -> int:
    """This worker's slot (SIOCTL_WORKER_SLOT, set by sioctl or by the test's launcher)."""
    return int(os.environ.get("SIOCTL_WORKER_SLOT", "-1"))


def identity(manager: Any, sid: str) -> dict[str, Any]:
    """Which worker serves this session, and that worker's Redis manager identity."""
    return {
        "slot": slot(),
        "pid": os.getpid(),
        "sid": sid,
        "host_id": getattr(manager, "host_id", None),
        "own_channel": getattr(manager, "own_channel", None),
    }


def manager_stats(manager: Any) -> dict[str, Any]:
    """The Redis manager's publisher and listener figures on this worker."""
    publisher = getattr(manager, "publisher", None)
    listener = getattr(manager, "listener", None)
    result: dict[str, Any] = {"slot": slot()}
    if publisher is not None:
        result.update(
            published=publisher.stats.published,
            batches=publisher.stats.batches,
            dropped=publisher.stats.dropped,
            queued=len(publisher.queue),
            connected=publisher.stats.connected,
        )
    if listener is not None:
        result.update(subscribed=listener.subscribed, resubscriptions=listener.resubscriptions)
    result["lost"] = getattr(manager, "lost", None)
    return result


def emitted(order: dict[str, Any]) -> range:
    """The message numbers a send_to order asks for: order['first'] + range(order['n'])."""
    first = int(order.get("first", 0))
    return range(first, first + int(order["n"]))


def message(order: dict[str, Any], i: int) -> dict[str, Any]:
    """Message ``i`` of a send_to order: its tag and number, padded with order['pad'] bytes
    when asked (to fill a slow subscriber's output buffer in Redis)."""
    data: dict[str, Any] = {"tag": order["tag"], "i": i}
    if order.get("pad"):
        data["pad"] = "x" * int(order["pad"])
    return data


def mixed_target(order: dict[str, Any], i: int) -> str | None:
    """Where message ``i`` of a send_mixed order goes: mostly order['to'] (a socket), every
    7th to order['room'], every 11th to everyone (None), so that a receiver's bursts mix the
    emits its worker holds with those python-socketio delivers."""
    if i % 11 == 5:
        return None
    if i % 7 == 3:
        return str(order["room"])
    return str(order["to"])


def varied_arguments(order: dict[str, Any], i: int) -> tuple[Any, ...]:
    """The arguments of message ``i`` of a send_varied order, in turn: one plain argument,
    two (a tuple), and one carrying bytes (a binary emit), so that one socket's messages
    mix the emits a manager queues directly with those python-socketio's emit publishes."""
    data = message(order, i)
    if i % 3 == 1:
        return (data, f"second-{i}")
    if i % 3 == 2:
        return ({**data, "blob": bytes([i % 256, 0, 255])},)
    return (data,)


def storm_plan(order: dict[str, Any]) -> tuple[int, int, float]:
    """(senders, messages each, pause between emits) of a storm order."""
    return int(order["senders"]), int(order["each"]), float(order.get("pause", 0.0))
