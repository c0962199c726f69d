"""Pub/sub loses what is published while a worker is not subscribed; sioctl counts it exactly."""

from __future__ import annotations

import time
from typing import Any

from tests.support.clients import wait_until
from tests.support.messaging import (
    APP,
    OwnRedis,
    Sender,
    barrier,
    clients_on_slots,
    inbox_for,
    new_tag,
)


def test_pubsub_losses_are_counted_exactly(
    own_redis: OwnRedis, start_cluster: Any, connect: Any
) -> None:
    cluster = start_cluster(APP, redis_url=own_redis.url)
    slots = clients_on_slots(connect, cluster)
    (a, _), (b, wb) = slots[0][0], slots[1][0]
    inbox = inbox_for(b)
    sender = Sender(a, wb["sid"], new_tag("loss"), interval=0.005).start()
    try:
        inbox.wait(sender.tag, 20)
        for _ in range(3):
            # The subscriptions drop; publishing goes on meanwhile.
            assert own_redis.client().client_kill_filter(_type="pubsub") >= 1
            wait_until(lambda: b.call("manager_stats")["subscribed"], 10, what="resubscribed")
            time.sleep(0.3)
    finally:
        sender.stop()
    barrier(a, b, wb["sid"])  # a later message on the same path reveals any gap before it
    sent = len(sender.sent)
    received = len(inbox.of(sender.tag))
    lost = b.call("manager_stats")["lost"]
    print(f"pub/sub with killed subscriptions: sent {sent}, received {received}, counted lost "
          f"{lost}")
    assert lost == sent - received
    if lost:
        assert "lost" in cluster.log_text()
