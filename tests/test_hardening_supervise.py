"""Issue 13, items 7 and 8: the master supervises what it runs.

7. A worker that stops answering (SIGSTOP) stops receiving connections; what sits unread in its
   channel when the heartbeat kills it goes back to the slot's queue for its replacement.
8. The embedded redis-server is restarted when it dies, and status, metrics and the log say so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from clients import ips_for_slot

WORKERS = 2
# The heartbeat kills a silent worker after this many seconds (--timeout).
TIMEOUT = 4
# Connections opened while a worker is stopped, before and after the master notices.
BEFORE_NOTICE = 40
AFTER_NOTICE = 40
# How long a client waits for its answer (kill after TIMEOUT, respawn, boot).
ANSWER_WAIT = 25.0

HANDSHAKE = (
    b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"
    b"Host: localhost\r\nConnection: close\r\n\r\n"
)


def open_requests(port: int, ips: list[str], count: int) -> list[socket.socket]:
    """``count`` connections from ``ips`` (in turn), each with an Engine.IO handshake sent."""
    sockets = []
    for i in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((ips[i % len(ips)], 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(HANDSHAKE)
        sockets.append(sock)
    return sockets


def answers(sockets: list[socket.socket], wait: float) -> dict[str, int]:
    """Read every connection to its end; counts ``served`` (200 with a sid), ``reset`` (closed
    or reset without an answer) and ``silent`` (no answer within ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    counts = {"served": 0, "reset": 0, "silent": 0}
    for sock in sockets:
        data = b""
        try:
            while True:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            counts["silent"] += 1
            continue
        except OSError:
            pass  # reset: counted below from what arrived
        finally:
            sock.close()
        served = data.startswith(b"HTTP/1.1 200") and b'"sid"' in data
        counts["served" if served else "reset"] += 1
    return counts


def slot_state(status: dict[str, Any], slot: int) -> dict[str, Any]:
    return next(s for s in status["slots"] if s["slot"] == slot)


def test_connections_for_a_stopped_worker_reach_its_replacement(
    start_cluster: Callable[..., Any],
) -> None:
    cluster = start_cluster(workers=WORKERS, extra_args=["--timeout", str(TIMEOUT)])
    pids = cluster.worker_pids()
    ips = ips_for_slot(0, WORKERS)
    os.kill(pids[0], signal.SIGSTOP)
    try:
        # The master has not noticed yet: these go into the stopped worker's channel.
        sockets = open_requests(cluster.port, ips, BEFORE_NOTICE)
        cluster.wait_for(lambda s: slot_state(s, 0)["state"] == "stalled", timeout=TIMEOUT,
                         what="slot 0 to be marked stalled")
        # Noticed: these wait in the slot's queue.
        sockets += open_requests(cluster.port, ips, AFTER_NOTICE)
        cluster.wait_for(lambda s: slot_state(s, 0)["pending"] >= AFTER_NOTICE,
                         what="the later connections to wait in slot 0's queue")
        counts = answers(sockets, ANSWER_WAIT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[0], signal.SIGCONT)

    assert counts == {"served": BEFORE_NOTICE + AFTER_NOTICE, "reset": 0, "silent": 0}
    slot = slot_state(cluster.status(), 0)
    assert slot["pid"] != pids[0] and slot["restarts"] == 1
    assert slot["requeued"] == BEFORE_NOTICE
    other = slot_state(cluster.status(), 1)
    assert other["pid"] == pids[1] and other["restarts"] == 0
    log = cluster.log_text()
    assert log.count(f"worker pid {pids[0]} silent") == 1, log
    assert log.count(f"took back {BEFORE_NOTICE} connection(s)") == 1, log


def test_a_stopped_worker_that_resumes_serves_what_waited(
    start_cluster: Callable[..., Any],
) -> None:
    cluster = start_cluster(workers=WORKERS, extra_args=["--timeout", "30"])
    pids = cluster.worker_pids()
    os.kill(pids[0], signal.SIGSTOP)
    try:
        cluster.wait_for(lambda s: slot_state(s, 0)["state"] == "stalled", timeout=10.0,
                         what="slot 0 to be marked stalled")
        sockets = open_requests(cluster.port, ips_for_slot(0, WORKERS), AFTER_NOTICE)
        cluster.wait_for(lambda s: slot_state(s, 0)["pending"] == AFTER_NOTICE,
                         what="the connections to wait in slot 0's queue")
    finally:
        os.kill(pids[0], signal.SIGCONT)
    counts = answers(sockets, ANSWER_WAIT)
    assert counts == {"served": AFTER_NOTICE, "reset": 0, "silent": 0}
    slot = slot_state(cluster.status(), 0)
    assert (slot["pid"], slot["state"], slot["restarts"]) == (pids[0], "ready", 0)
    assert f"worker pid {pids[0]} answers again" in cluster.log_text()
