"""Pub/sub loses what is published while a worker is not subscribed; sioctl counts it exactly,
on either engine (``start_nodes``)."""

from __future__ import annotations

import time
from typing import Any

from tests.support.clients import wait_until
from tests.support.messaging import (
    OwnRedis,
    Sender,
    barrier,
    clients_on_slots,
    inbox_for,
    new_tag,
)


def test_pubsub_losses_are_counted_exactly(
    own_redis: OwnRedis, start_nodes: Any, connect: Any  # noqa: F811
) -> None:
    cluster = start_nodes(own_redis.url)
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


# A subscriber whose output buffer in Redis passes this is disconnected by Redis at once.
PUBSUB_BUFFER_LIMIT = 64 * 1024


def test_a_starved_listener_is_cut_off_and_its_losses_counted_exactly(
    own_redis: OwnRedis, start_nodes: Any, connect: Any  # noqa: F811
) -> None:
    """Worker 1 stops reading (its loop is held) while worker 0 keeps sending to its client;
    Redis disconnects the slow subscriber (client-output-buffer-limit). Worker 1 subscribes
    again once it runs, and counts as lost exactly what its client missed."""
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster)
    (a, _), (b, wb) = slots[0][0], slots[1][0]
    admin = own_redis.client()
    # Worker 1 records its socket's owner through its publisher: until that lands, worker 0
    # would remember "nobody" and send on the shared channel, where no later message from it
    # would reveal the gap.
    wait_until(lambda: admin.get(f"socketio:owner:/:{wb['sid']}"), 10, what="owner record")
    admin.config_set("client-output-buffer-limit", f"pubsub {PUBSUB_BUFFER_LIMIT} 0 0")
    inbox = inbox_for(b)
    tag = new_tag("starved")
    sent = 0
    try:
        assert _subscribers(admin, wb["own_channel"]) == 1
        b.emit("block", 3.0)  # no answer: the worker is held
        # Bounded: 60 x 50 messages of 4 KB. The kernel's socket buffers take a few MB before
        # Redis's own buffer for the subscriber fills.
        for _ in range(60):
            assert a.call("send_to", {"to": wb["sid"], "n": 50, "first": sent, "tag": tag,
                                      "pad": 4096}) == 50
            sent += 50
            if not _subscribers(admin, wb["own_channel"]):
                break  # Redis cut the starved subscriber off
        assert not _subscribers(admin, wb["own_channel"]), "Redis kept the slow subscriber"
        # Until worker 1 runs again its stale figures still say subscribed: wait for the
        # resubscription itself.
        wait_until(lambda: _resubscribed(b.call("manager_stats")), 20, what="resubscribed")
    finally:
        admin.close()
    barrier(a, b, wb["sid"])  # a later message on the same path reveals any gap before it
    received = len(inbox.of(tag))
    stats = b.call("manager_stats")
    print(f"starved listener: sent {sent}, received {received}, counted lost {stats['lost']}")
    log = cluster.log_text()
    assert stats["lost"] == sent - received > 0, "\n".join(
        line for line in log.splitlines() if "lost" in line or "Redis" in line or
        "owner" in line)
    assert "NOT SUBSCRIBED" in log


def _resubscribed(stats: dict[str, Any]) -> bool:
    return bool(stats["subscribed"]) and stats["resubscriptions"] >= 1


def _subscribers(client: Any, channel: str) -> int:
    return int(client.pubsub_numsub(channel)[0][1])
