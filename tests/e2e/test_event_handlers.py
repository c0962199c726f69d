"""Each event's handler runs in a green thread (a task) of its own, as python-socketio's
``async_handlers`` promise: a handler that waits holds up neither the same client's next events
nor their acks, a handler that raises leaves the session serving, and what a handler leaves in
a context variable (or, on eventlet, a green thread's threading.local) is not what the next
event's handler finds. On eventlet the handler starts at once in the green thread that read its
event, the reader goes on when it first waits, and the green thread serves a later event once
its handler has ended (``worker/protocol/green_handlers.py``); both engines, websocket and
polling."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.support.cluster import ENGINES

TRANSPORTS = [["websocket"], ["polling"]]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("transports", TRANSPORTS, ids=["websocket", "polling"])
def test_a_waiting_handler_holds_up_no_other_event_of_its_client(
        start_cluster: Any, connect: Any, transports: list[str]) -> None:
    cluster = start_cluster(workers=1)
    client = connect(cluster, "127.0.25.1", transports=transports)
    order: list[str] = []
    held_done = threading.Event()

    def held_answered(data: Any) -> None:
        order.append(f"held:{data}")
        held_done.set()

    # echo_held's handler waits until 'release': the events sent after it are answered
    # meanwhile, in the order sent (were it holding them up, these calls would time out).
    client.emit("echo_held", "x", callback=held_answered)
    for i in range(5):
        assert client.call("echo", i, timeout=20) == i
        order.append(f"echo:{i}")
    assert client.call("release", timeout=20) is True
    assert held_done.wait(20), "the waiting handler never answered"
    assert order == [f"echo:{i}" for i in range(5)] + ["held:x"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_handler_that_raises_leaves_its_session_serving(start_cluster: Any,
                                                          connect: Any) -> None:
    cluster = start_cluster(workers=1)
    client = connect(cluster, "127.0.25.2", transports=["websocket"])
    client.emit("fail", "x")
    for i in range(3):
        assert client.call("echo", i, timeout=10) == i
    assert client.connected


# What a handler may leave behind: a context variable (both engines), and on eventlet a green
# thread's threading.local (on asyncio every handler shares the worker's one thread, and so its
# threading.local).
LEFT_BEHIND = [(engine, "mark_context") for engine in ENGINES] + [("eventlet", "mark_local")]


@pytest.mark.parametrize(("engine", "event"), LEFT_BEHIND)
def test_what_a_handler_leaves_behind_is_not_the_next_ones(start_cluster: Any, connect: Any,
                                                          event: str) -> None:
    """A value one event's handler set (``event``: in a context variable, or in a
    threading.local) is not what the next events' handlers find, of its own client or
    another, though on eventlet they run on the green thread it ran on."""
    cluster = start_cluster(workers=1)
    first = connect(cluster, "127.0.25.3", transports=["websocket"])
    second = connect(cluster, "127.0.25.4", transports=["websocket"])
    for i in range(3):
        assert first.call(event, f"first-{i}", timeout=10) is None
        assert second.call(event, f"second-{i}", timeout=10) is None
        # A handler that leaves nothing in between, then one that looks again.
        assert first.call("echo", i, timeout=10) == i
        assert second.call(event, None, timeout=10) is None
