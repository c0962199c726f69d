"""Room queries across workers: fetch, join, leave and disconnect every matching socket, on
both engines (tests/apps/messaging.py and its asyncio twin)."""

from __future__ import annotations

import os
import queue
import signal
from typing import Any

import pytest

from tests.support.clients import ips_for_slot, wait_until
from tests.support.cluster import ENGINES, MESSAGING_APPS
from tests.support.messaging import OwnRedis


@pytest.mark.parametrize("engine", ENGINES)
def test_queries_see_and_move_sockets_on_every_worker(
    start_cluster: Any, connect: Any, engine: str
) -> None:
    cluster = start_cluster(MESSAGING_APPS[engine])
    ours = [connect(cluster, ips_for_slot(slot, 2)[0]) for slot in (0, 1, 1)]
    outsider = connect(cluster, ips_for_slot(0, 2)[0])
    for client in ours:
        assert client.call("join", "team", timeout=10)
    asker = outsider
    answer = asker.call("query", {"kind": "fetch", "room": "team"}, timeout=10)
    assert sorted(s["sid"] for s in answer["sockets"]) == sorted(c.get_sid("/") for c in ours)
    assert all("team" in s["rooms"] for s in answer["sockets"])
    everyone = asker.call("query", {"kind": "fetch"}, timeout=10)["sockets"]
    assert len(everyone) == 4

    far = ours[1].get_sid("/")  # on worker 1; the asker is on worker 0
    assert "team" in asker.call("query", {"kind": "rooms_of", "sid": far}, timeout=10)["rooms"]

    assert asker.call("query", {"kind": "join", "room": "team", "target": "vip"},
                      timeout=10) == {"count": 3}
    vip = asker.call("query", {"kind": "fetch", "room": "vip"}, timeout=10)["sockets"]
    assert sorted(s["sid"] for s in vip) == sorted(c.get_sid("/") for c in ours)
    assert asker.call("query", {"kind": "leave", "room": "team", "target": "vip"},
                      timeout=10) == {"count": 3}
    assert asker.call("query", {"kind": "fetch", "room": "vip"}, timeout=10)["sockets"] == []

    gone: queue.Queue[Any] = queue.Queue()
    for client in ours:
        client.on("disconnect", lambda *a: gone.put(1))
    assert asker.call("query", {"kind": "disconnect", "room": "team"}, timeout=10) == {
        "count": 3
    }
    for _ in ours:
        gone.get(timeout=10)
    assert outsider.connected


@pytest.mark.parametrize("engine", ENGINES)
def test_a_stopped_worker_makes_a_query_time_out_not_hang(
    start_cluster: Any, connect: Any, engine: str
) -> None:
    cluster = start_cluster(MESSAGING_APPS[engine])
    asker = connect(cluster, ips_for_slot(0, 2)[0])
    connect(cluster, ips_for_slot(1, 2)[0])
    stopped = cluster.worker_pids()[1]
    os.kill(stopped, signal.SIGSTOP)
    try:
        # The call's own timeout (10 s) would fail the test if the query hung.
        answer = asker.call("query", {"kind": "fetch", "timeout": 1.0}, timeout=10)
    finally:
        os.kill(stopped, signal.SIGCONT)
    assert answer["error"] == "QueryTimeout"
    assert answer["message"] == "1 of 2 workers answered within 1s"
    assert answer["answered"] == 1
    # Once it runs again, the next query is whole.
    wait_until(lambda: "sockets" in asker.call("query", {"kind": "fetch"}, timeout=10), 10,
               what="a complete answer")


def test_eventlet_and_asyncio_nodes_answer_each_other(
    own_redis: OwnRedis, start_cluster: Any, connect: Any  # noqa: F811
) -> None:
    """A node of each engine on one Redis: each one's queries see the other's sockets, and a
    room emit from either reaches the other's client (the same messages on both engines)."""
    nodes = {engine: start_cluster(MESSAGING_APPS[engine], workers=1, redis_url=own_redis.url)
             for engine in ENGINES}
    clients = {engine: connect(nodes[engine], "127.0.0.2") for engine in ENGINES}
    inboxes: dict[str, queue.Queue[Any]] = {engine: queue.Queue() for engine in ENGINES}
    for engine, client in clients.items():
        client.on("msg", inboxes[engine].put)
        assert client.call("join", "mixed", timeout=10)
    everyone = sorted(client.get_sid("/") for client in clients.values())
    for asker in clients.values():
        answer = asker.call("query", {"kind": "fetch", "room": "mixed"}, timeout=10)
        assert sorted(s["sid"] for s in answer["sockets"]) == everyone, answer
    for engine, sender in clients.items():
        assert sender.call("send_to", {"to": "mixed", "n": 1, "tag": engine}, timeout=10) == 1
        for inbox in inboxes.values():
            assert inbox.get(timeout=10) == {"tag": engine, "i": 0}
