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


class Traffic:
    """One sender on worker 0 storming a client on worker 1 (``arrivals``)."""

    def __init__(self, cluster: Any, connect: Any) -> None:
        slots = clients_on_slots(connect, cluster)
        (self.sender, _), (receiver, info) = slots[0][0], slots[1][0]
        self.to = info["sid"]
        self.arrivals = Arrivals(receiver, new_tag("streams"))
        assert self.sender.call(
            "storm", {"senders": 1, "each": COUNT, "pause": PAUSE, "tag": self.arrivals.tag,
                      "to": self.to}, timeout=10) == COUNT

    def barrier(self) -> None:
        """One more message on the same path, waited for: the receiving worker reads its
        stream in order, so whatever it would deliver again (an entry read twice across a
        reconnect) arrives before it. Not tests.support's barrier: its Inbox would take the
        client's 'msg' handler from ``arrivals``."""
        tag = new_tag("barrier")
        self.sender.call("send_to", {"to": self.to, "n": 1, "tag": tag}, timeout=10)
        wait_until(lambda: self.arrivals.heard(tag), 10, what=f"the barrier {tag}")


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
    traffic = Traffic(cluster, connect)
    arrivals = traffic.arrivals
    killed = 0
    for _ in range(3):  # three times during the traffic
        before = len(arrivals.seen())
        wait_until(lambda: len(arrivals.seen()) > before + 50, 10, what="traffic")  # noqa: B023
        killed += kill_stream_readers(own_redis)
    assert killed >= 3
    wait_until(lambda: len(arrivals.seen()) >= COUNT, 20, what="every message")
    traffic.barrier()  # anything delivered twice has arrived by now
    assert arrivals.seen() == list(range(COUNT)), "lost, doubled or out of order"
    assert "NOT READING" in cluster.log_text()


def test_a_redis_restart_loses_nothing(
    own_redis: OwnRedis, start_nodes: Any, connect: Any  # noqa: F811
) -> None:
    cluster = start_nodes(own_redis.url, transport="streams")
    pids = cluster.worker_pids()
    traffic = Traffic(cluster, connect)
    arrivals = traffic.arrivals
    wait_until(lambda: len(arrivals.seen()) > 50, 10, what="traffic")
    own_redis.stop()
    time.sleep(1.0)  # the sender keeps emitting into its queue
    own_redis.start()
    wait_until(lambda: len(arrivals.seen()) >= COUNT, 30, what="every message")
    traffic.barrier()  # anything delivered twice has arrived by now
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
