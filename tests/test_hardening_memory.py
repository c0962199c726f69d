"""Issue 13, item 14: a worker lets go of what its sessions held once they disconnect.

After rounds of 10k websockets, worker RSS stayed far above its baseline. Three things of ours
kept closed sessions alive after their clients had gone (tests/bench/memory_rounds.py
measures the memory; docs/design.md, "Memory after mass disconnects"):

- the hub timer of a session's next ping held the session (its queue, events, websocket) for
  up to ``ping_interval`` (25 s by default) after the close;
- eventlet.wsgi's per-connection handler and its last environ form a reference cycle (the
  environ's ``eventlet.set_idle`` closure, and ours), and so did our Connection and its state
  list, so every finished connection (its green socket, buffers, environ, websocket) waited
  for a full pass of the cyclic garbage collector;
- python-engineio's sweep for ping timeouts held a copy of the sessions dict for a whole
  sweep (up to ``ping_timeout``).

These tests disconnect rounds of a few hundred websockets from a real one-worker cluster and
ask the worker (SIGUSR2, sioctl.worker.memory) what it still holds: the per-session objects and
structures must be gone at once, without any garbage collection. They count objects; RSS
figures are the benchmark's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest
import websocket
from conftest import Cluster

from sioctl.worker import memory

SOCKETS = 150
ROUNDS = 3
DUMP_TIMEOUT = 15.0
DUMP_MARKER = "WARNING memory "


def open_session(port: int, source_ip: str) -> websocket.WebSocket:
    """A websocket with the default namespace connected, from ``source_ip``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(source_ip, 0))
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", socket=sock, timeout=10)
    opening = ws.recv()
    assert isinstance(opening, str) and opening.startswith("0"), opening
    ws.send("40")
    reply = ws.recv()
    assert isinstance(reply, str) and reply.startswith("40"), reply
    return ws


def reset(ws: websocket.WebSocket) -> None:
    """Drop the connection with a TCP reset, as a client that vanishes does."""
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.sock.close()


def worker_figures(cluster: Cluster) -> dict[str, Any]:
    """The worker's memory figures: SIGUSR2 makes it log them as one JSON line."""
    pid = cluster.worker_pids()[0]
    start = len(cluster.log_text())
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + DUMP_TIMEOUT
    while time.monotonic() < deadline:
        for line in cluster.log_text()[start:].splitlines():
            if f"pid {pid}]" in line and DUMP_MARKER in line:
                return dict(json.loads(line.split(DUMP_MARKER, 1)[1]))
        time.sleep(0.1)
    cluster.fail(f"worker {pid} logged no memory figures within {DUMP_TIMEOUT:g}s")
    raise AssertionError("unreachable")


def wait_idle(cluster: Cluster) -> None:
    """Until the worker reports no session and no connection (its heartbeat, once a second)."""
    cluster.wait_for(
        lambda s: all(slot["sessions"] == 0 and slot["connections"] == 0
                      for slot in s["slots"]),
        timeout=30.0, what="no session and no connection left")


@pytest.fixture
def cluster(start_cluster: Callable[..., Cluster]) -> Cluster:
    # One worker (its sessions all in one process), joined to Redis as in production.
    return start_cluster(app="tests.apps.chat:sio", workers=1)


def test_disconnected_sessions_leave_nothing_behind(cluster: Cluster) -> None:
    before = worker_figures(cluster)
    for number in range(ROUNDS):
        sockets = [open_session(cluster.port, f"127.0.{number + 1}.{i % 250 + 2}")
                   for i in range(SOCKETS)]
        held = worker_figures(cluster)
        assert held["structures"]["eio.sockets open"] == SOCKETS
        assert held["session_objects"]["ConformantSocket"] == SOCKETS
        # Half leave with a websocket close, half vanish (TCP reset).
        for i, ws in enumerate(sockets):
            if i % 2:
                ws.close(timeout=1.0)
            else:
                reset(ws)
        del sockets
        wait_idle(cluster)
        after = worker_figures(cluster)
        left = {name: count for name, count in after["structures"].items()
                if count and name != "hub timers"}
        assert left == {}, f"round {number + 1}: per-session structures not empty: {left}"
        # No collection has run for these (the dump counts before anything else): what the
        # sessions held was freed when they closed, not when the collector came by.
        objects = after["session_objects"]
        assert objects["ConformantSocket"] == 0, objects
        assert objects["TimedProtocol"] == 0, objects
        assert objects["HttpProtocol"] == 0, objects
        assert objects["RFC6455WebSocket"] == 0, objects
        assert objects["Input"] == 0 and objects["_BoundedInput"] == 0, objects
        # The master's channel and Redis connections are green sockets too (the manager's
        # pool may have opened a few more meanwhile); the clients' must all be gone.
        assert objects["GreenSocket"] <= before["session_objects"]["GreenSocket"] + 10, objects


def test_dump_reports_the_heap() -> None:
    """The figures a dump carries besides the counts (this process: no server needed)."""
    assert memory.rss_kib() > 0
    split = memory.rss_by_mapping()
    assert split.get("files", 0) > 0
    arenas = memory.pymalloc_arenas()
    assert arenas["arenas"] > 0 and arenas["used_bytes"] > 0
    heap = memory.heap_kib()
    assert heap == {} or set(heap) == {"mapped", "in_use", "free"}
