"""The no-loss transport (--redis-transport streams): a worker that loses Redis receives, after
reconnecting, what was published meanwhile, in order, exactly once; on either engine
(``start_nodes``)."""

from __future__ import annotations

import collections
import time
from typing import Any

from tests.support.clients import wait_until
from tests.support.messaging import (
    Arrivals,
    OwnRedis,
    barrier,
    clients_on_slots,
    inbox_for,
    new_tag,
)

# One sender on worker 0 emitting to a client on worker 1: 400 messages, 10 ms apart.
COUNT = 400
PAUSE = 0.01


def start_traffic(cluster: Any, connect: Any) -> tuple[Arrivals, Any]:
    slots = clients_on_slots(connect, cluster)
    (sender, _), (receiver, info) = slots[0][0], slots[1][0]
    tag = new_tag("streams")
    arrivals = Arrivals(receiver, tag)
    assert sender.call("storm", {"senders": 1, "each": COUNT, "pause": PAUSE, "tag": tag,
                                 "to": info["sid"]}, timeout=10) == COUNT
    return arrivals, sender


def kill_stream_readers(redis: OwnRedis) -> int:
    """Close every connection blocked in XREAD (the workers' readers); returns how many."""
    client = redis.client()
    killed = 0
    for entry in client.client_list():
        if entry.get("cmd") in ("xread", "xreadgroup"):
            killed += int(client.execute_command("CLIENT", "KILL", "ID", entry["id"]) or 0)
    return killed


def test_killed_readers_miss_nothing(
    own_redis: OwnRedis, start_nodes: Any, connect: Any  # noqa: F811
) -> None:
    cluster = start_nodes(own_redis.url, transport="streams")
    arrivals, _ = start_traffic(cluster, connect)
    killed = 0
    for _ in range(3):  # three times during the traffic
        before = len(arrivals.seen())
        wait_until(lambda: len(arrivals.seen()) > before + 50, 10, what="traffic")  # noqa: B023
        killed += kill_stream_readers(own_redis)
    assert killed >= 3
    wait_until(lambda: len(arrivals.seen()) >= COUNT, 20, what="every message")
    time.sleep(0.5)  # anything delivered twice would arrive by now
    assert arrivals.seen() == list(range(COUNT)), "lost, doubled or out of order"
    assert "NOT READING" in cluster.log_text()


def test_a_redis_restart_loses_nothing(
    own_redis: OwnRedis, start_nodes: Any, connect: Any  # noqa: F811
) -> None:
    cluster = start_nodes(own_redis.url, transport="streams")
    pids = cluster.worker_pids()
    arrivals, _ = start_traffic(cluster, connect)
    wait_until(lambda: len(arrivals.seen()) > 50, 10, what="traffic")
    own_redis.stop()
    time.sleep(1.0)  # the sender keeps emitting into its queue
    own_redis.start()
    wait_until(lambda: len(arrivals.seen()) >= COUNT, 30, what="every message")
    time.sleep(0.5)
    assert arrivals.seen() == list(range(COUNT)), "lost, doubled or out of order"
    assert cluster.worker_pids() == pids


def test_a_message_for_a_socket_not_here_is_passed_on(
    own_redis: OwnRedis, start_nodes: Any, connect: Any  # noqa: F811
) -> None:
    """Streams mode, a stale owner record naming the sender itself: the guarded XADD lands on
    its own stream, it reads there a message for a socket it does not hold and passes it on
    to the shared stream, so the client gets each message once and nothing counts as lost."""
    cluster = start_nodes(own_redis.url, transport="streams")
    slots = clients_on_slots(connect, cluster)
    (a, wa), (b, wb) = slots[0][0], slots[1][0]
    admin = own_redis.client()
    try:
        admin.set(f"socketio:owner:/:{wb['sid']}", wa["host_id"], px=60_000)
    finally:
        admin.close()
    inbox = inbox_for(b)
    tag = new_tag("misdelivered")
    assert a.call("send_to", {"to": wb["sid"], "n": 20, "tag": tag}) == 20
    assert inbox.wait(tag, 20) == collections.Counter(range(20))
    barrier(a, b, wb["sid"])
    assert inbox.of(tag) == collections.Counter(range(20))
    assert b.call("manager_stats")["lost"] == 0
