"""Issue 13, messaging group: what sioctl counts as lost, and bounded binary attachments.

Real clusters on a redis-server of the test's own, real python-socketio clients and raw
websocket clients (websocket-client).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from clients import wait_until
from test_messaging import (  # noqa: F401
    APP,
    OwnRedis,
    Sender,
    barrier,
    clients_on_slots,
    inbox_for,
    new_tag,
    own_redis,
)

# ------------------------------------------------------------------ item 10: lost, exactly


@pytest.mark.parametrize("to", ["socket", "room"])
def test_pubsub_lost_equals_what_clients_missed_both_ways(
    own_redis: OwnRedis, start_cluster: Any, connect: Any, to: str  # noqa: F811
) -> None:
    """Both workers send to each other while their subscriptions are killed: each worker's
    ``lost`` (in ``sioctl status`` too) is the number of messages its client did not get.
    To a socket: on the other worker's channel; to a room both clients are in: on the shared
    channel, which a worker also hears its own messages on."""
    cluster = start_cluster(APP, redis_url=own_redis.url)
    slots = clients_on_slots(connect, cluster)
    (a, wa), (b, wb) = slots[0][0], slots[1][0]
    inbox_a, inbox_b = inbox_for(a), inbox_for(b)
    if to == "room":
        room = new_tag("room")
        assert a.call("join", room) and b.call("join", room)
        to_a = to_b = room
    else:
        to_a, to_b = wa["sid"], wb["sid"]
    ab = Sender(a, to_b, new_tag("ab"), interval=0.005).start()
    ba = Sender(b, to_a, new_tag("ba"), interval=0.005).start()
    try:
        inbox_b.wait(ab.tag, 20)
        inbox_a.wait(ba.tag, 20)
        for _ in range(3):
            assert own_redis.client().client_kill_filter(_type="pubsub") >= 1
            for client in (a, b):
                wait_until(lambda c=client: c.call("manager_stats")["subscribed"], 10,
                           what="resubscribed")
            time.sleep(0.3)
    finally:
        ab.stop()
        ba.stop()
    # A later message on each path reveals any gap before it.
    barrier(a, b, to_b)
    barrier(b, a, to_a)
    missed_by_b = len(ab.sent) - len(inbox_b.of(ab.tag))
    missed_by_a = len(ba.sent) - len(inbox_a.of(ba.tag))
    lost_a = a.call("manager_stats")["lost"]
    lost_b = b.call("manager_stats")["lost"]
    print(f"CLIENT KILL x3, both ways, to a {to}: a->b sent {len(ab.sent)} missed "
          f"{missed_by_b} counted {lost_b}; b->a sent {len(ba.sent)} missed {missed_by_a} "
          f"counted {lost_a}")
    assert not ab.errors and not ba.errors
    assert (lost_a, lost_b) == (missed_by_a, missed_by_b)
    # The master's status (and so the metrics) shows the same figures once stats come in.
    wait_until(lambda: [s["messaging"]["lost"] for s in cluster.status()["slots"]]
               == [lost_a, lost_b], 5, what="status to show the workers' lost figures")
