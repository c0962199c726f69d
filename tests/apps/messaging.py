"""A test app for the cross-worker messaging tests: emits on demand, to a sid or a room.

Every message carries a tag and a sequence number, so a test can count what arrives and
spot losses and duplicates. Events answer with an ack. Its asyncio twin is
tests/apps/async_messaging.py; what they answer alike is in messaging_common.py.
"""

from __future__ import annotations

from typing import Any

import socketio

from tests.apps import messaging_common as common

sio = socketio.Server(cors_allowed_origins="*")


@sio.event
def whoami(sid: str, data: Any = None) -> dict[str, Any]:
    """Which worker serves this session, and that worker's Redis manager identity."""
    return common.identity(sio.manager, sid)


@sio.event
def echo(sid: str, data: Any = None) -> Any:
    return data


@sio.event
def join(sid: str, room: str) -> bool:
    sio.enter_room(sid, room)
    return True


@sio.event
def send_to(sid: str, order: dict[str, Any]) -> int:
    """Emit 'msg' {tag, i} to order['to'] (a sid or a room), for i in order['first'] +
    range(order['n']); returns how many were emitted."""
    numbers = common.emitted(order)
    for i in numbers:
        sio.emit("msg", common.message(order, i), to=order["to"])
    return len(numbers)


@sio.event
def send_mixed(sid: str, order: dict[str, Any]) -> int:
    """Emit 'msg' {tag, i} for i in range(order['n']), each to the place ``common.
    mixed_target`` says (order['to'], order['room'] or everyone, in turn)."""
    for i in range(int(order["n"])):
        sio.emit("msg", common.message(order, i), to=common.mixed_target(order, i))
    return int(order["n"])


@sio.event
def send_varied(sid: str, order: dict[str, Any]) -> int:
    """Emit 'msg' to order['to'] for i in range(order['n']) with ``common.varied_arguments``
    (one argument, two, binary, in turn); returns how many were emitted."""
    for i in range(int(order["n"])):
        arguments = common.varied_arguments(order, i)
        sio.emit("msg", arguments if len(arguments) > 1 else arguments[0], to=order["to"])
    return int(order["n"])


@sio.event
def block(sid: str, seconds: float) -> None:
    """Hold the whole worker (its hub) for ``seconds``: a starved listener."""
    from eventlet.patcher import original

    original("time").sleep(float(seconds))


@sio.event
def storm(sid: str, order: dict[str, Any]) -> int:
    """Start order['senders'] background tasks; sender k emits 'msg' {tag, i} to order['to']
    for i = k * each ... k * each + each - 1, sleeping order['pause'] between emits. Returns
    at once with the number of messages that will be emitted."""
    senders, each, pause = common.storm_plan(order)

    def sender(k: int) -> None:
        for i in range(k * each, (k + 1) * each):
            sio.emit("msg", {"tag": order["tag"], "i": i}, to=order["to"])
            sio.sleep(pause)

    for k in range(senders):
        sio.start_background_task(sender, k)
    return senders * each


@sio.event
def manager_stats(sid: str, data: Any = None) -> dict[str, Any]:
    """The Redis manager's publisher and listener figures on this worker."""
    return common.manager_stats(sio.manager)


@sio.event
def figures(sid: str, data: Any = None) -> dict[str, Any]:
    """What ``sioctl status`` and the metrics show of this worker's Redis traffic."""
    return dict(sio.manager.figures())


@sio.event
def query(sid: str, order: dict[str, Any]) -> dict[str, Any]:
    """Run a global query on this worker's manager: fetch, join, leave or disconnect."""
    manager = sio.manager
    kind, room = order["kind"], order.get("room")
    timeout = float(order.get("timeout", 2.0))
    try:
        if kind == "fetch":
            return {"sockets": manager.fetch_sockets(room, timeout=timeout)}
        if kind == "rooms_of":
            return {"rooms": manager.rooms_of(order["sid"], timeout=timeout)}
        if kind == "join":
            return {"count": manager.sockets_join(order["target"], room, timeout=timeout)}
        if kind == "leave":
            return {"count": manager.sockets_leave(order["target"], room, timeout=timeout)}
        return {"count": manager.disconnect_sockets(room, timeout=timeout)}
    except Exception as exc:  # QueryTimeout: say so, with what the others answered
        return {"error": type(exc).__name__, "message": str(exc),
                "answered": len(getattr(exc, "answers", []))}
