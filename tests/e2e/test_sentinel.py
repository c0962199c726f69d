"""sioctl on Redis Sentinel (``--redis redis+sentinel://...``): a master, a replica and three
sentinels of the test's own (tests.support.sentinel); two workers of either engine
(``start_nodes``) find the master through the sentinels, and after the master is SIGKILLed
during broadcast traffic they follow the promoted replica by themselves, counting what pub/sub
lost meanwhile; the gateway's registry writes to whichever master the sentinels name."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sioctl.cli.status import topology_line
from tests.support.clients import wait_until
from tests.support.cluster import ENGINES
from tests.support.gateway import APP_DIR, CENTRAL_KEY, GwClient
from tests.support.messaging import (
    Arrivals,
    Sender,
    barrier,
    clients_on_slots,
    inbox_for,
    new_tag,
    stats_once_sent,
)
from tests.support.sentinel import SentinelGroup

# How long broadcasts may take to reach every client again once the sentinels promoted the
# replica (the listeners' and publisher's retry delays).
RESUME_TIMEOUT = 30.0


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path / "sentinel")
    try:
        yield group
    finally:
        group.stop()


def test_broadcasts_follow_a_sentinel_failover(
    sentinel_group: SentinelGroup, start_nodes: Any, connect: Any
) -> None:
    cluster = start_nodes(sentinel_group.url)
    assert "redis+sentinel://" in cluster.log_text()
    pids = cluster.worker_pids()
    slots = clients_on_slots(connect, cluster)
    (a, _), (b, wb) = slots[0][0], slots[1][0]
    inboxes = [inbox_for(a), inbox_for(b)]
    # Broadcasts from worker 0, to every client (both workers').
    sender = Sender(a, None, new_tag("failover"), interval=0.02).start()
    try:
        for inbox in inboxes:
            inbox.wait(sender.tag, 20)
        killed_at = sentinel_group.kill_master()
        promoted_at = sentinel_group.wait_failover()

        def everyone_has_news() -> bool:
            after = sender.sent_after(killed_at)
            return all(after & set(inbox.of(sender.tag)) for inbox in inboxes)

        wait_until(everyone_has_news, RESUME_TIMEOUT,
                   what="broadcasts reaching both workers' clients after the failover")
        resumed_at = time.monotonic()
        time.sleep(1.0)  # steady traffic on the new master
    finally:
        sender.stop()
    barrier(a, b, wb["sid"])  # a later message on the same path reveals any gap before it
    sent = len(sender.sent)
    received = [len(inbox.of(sender.tag)) for inbox in inboxes]
    stats = [stats_once_sent(a), stats_once_sent(b)]
    print(f"Sentinel failover: promoted {promoted_at - killed_at:.1f}s after the kill, "
          f"broadcasts everywhere again {resumed_at - killed_at:.1f}s after it; sent {sent}, "
          f"received {received}, counted lost {[s['lost'] for s in stats]}, "
          f"publisher {[(s['published'], s['dropped']) for s in stats]}")
    assert not sender.errors, sender.errors
    assert cluster.worker_pids() == pids
    assert sentinel_group.master_port_now() == sentinel_group.replica_port
    # Worker 1 heard worker 0's broadcasts only through Redis: what it missed is counted.
    assert stats[1]["lost"] == sent - received[1]
    assert all(max(inbox.of(sender.tag).values()) == 1 for inbox in inboxes), "duplicates"
    # The publisher queued through the outage and lost nothing; each listener named the
    # outage once and resubscribed on the new master (the log says which master it dialled).
    assert all(s["dropped"] == 0 and s["queued"] == 0 for s in stats), stats
    assert all(s["resubscriptions"] >= 1 and s["subscribed"] for s in stats), stats
    log = cluster.log_text()
    assert log.count("NOT SUBSCRIBED") == log.count("subscribed again") == 2, log
    assert f"127.0.0.1:{sentinel_group.master_port}" in log
    # Everything sent once both were back reached both.
    late = sender.sent_after(resumed_at)
    assert late and all(late <= set(inbox.of(sender.tag)) for inbox in inboxes)


# Streams mode: one sender on worker 0 emitting to a client on worker 1, 10 ms apart.
STREAM_COUNT = 600


def test_streams_lose_nothing_in_a_sentinel_failover(
    sentinel_group: SentinelGroup, start_nodes: Any, connect: Any
) -> None:
    cluster = start_nodes(sentinel_group.url, transport="streams")
    pids = cluster.worker_pids()
    slots = clients_on_slots(connect, cluster)
    (sender, _), (receiver, info) = slots[0][0], slots[1][0]
    tag = new_tag("streams-failover")
    arrivals = Arrivals(receiver, tag)
    assert sender.call("storm", {"senders": 1, "each": STREAM_COUNT, "pause": 0.01, "tag": tag,
                                 "to": info["sid"]}, timeout=10) == STREAM_COUNT
    wait_until(lambda: len(arrivals.seen()) > 50, 10, what="traffic")
    killed_at = sentinel_group.kill_master()
    before = len(arrivals.seen())
    promoted_at = sentinel_group.wait_failover()
    wait_until(lambda: len(arrivals.seen()) > before, RESUME_TIMEOUT,
               what="delivery after the failover")
    resumed_at = time.monotonic()
    wait_until(lambda: len(arrivals.seen()) >= STREAM_COUNT, RESUME_TIMEOUT, what="every message")
    time.sleep(0.5)  # anything delivered twice would arrive by now
    seen = arrivals.seen()
    print(f"Sentinel failover, streams: promoted {promoted_at - killed_at:.1f}s after the kill, "
          f"delivery again {resumed_at - killed_at:.1f}s after it; {len(seen)} of "
          f"{STREAM_COUNT} arrived")
    assert seen == list(range(STREAM_COUNT)), "lost, doubled or out of order"
    assert cluster.worker_pids() == pids


@pytest.mark.parametrize("engine", ENGINES)
def test_the_gateway_registry_follows_a_sentinel_failover(
    sentinel_group: SentinelGroup, start_cluster: Any
) -> None:
    """The gateway's registry client (worker/redis_clients.py) writes to the master the
    sentinels name, before and after a failover."""
    cluster = start_cluster(app=str(APP_DIR), workers=1, redis_url=sentinel_group.url,
                            extra_args=["--env", "prod"], env={"GWAPP_CENTRAL_KEY": CENTRAL_KEY})
    clients = [GwClient("127.0.0.2"), GwClient("127.0.0.3")]
    try:
        first, second = clients
        first.connect(cluster.url)
        master = sentinel_group.client(sentinel_group.master_port)
        assert master.hget(f"socketio:gw:client:{first.sid}", "user") == \
            first.user_id.encode()
        sentinel_group.kill_master()
        sentinel_group.wait_failover()
        second.connect(cluster.url)
        promoted = sentinel_group.client(sentinel_group.replica_port)
        wait_until(lambda: promoted.hget(f"socketio:gw:client:{second.sid}", "user") ==
                   second.user_id.encode(), RESUME_TIMEOUT,
                   what="the new socket in the registry on the promoted master")
        assert first.sio.connected and second.sio.connected
    finally:
        for client in clients:
            client.sio.shutdown()


PASSWORD = "s3cret-sentinel"


def test_a_password_protected_master_and_no_password_in_the_log(
    tmp_path: Path, start_nodes: Any, connect: Any
) -> None:
    group = SentinelGroup(tmp_path / "sentinel", password=PASSWORD)
    try:
        cluster = start_nodes(group.url)
        slots = clients_on_slots(connect, cluster)
        (a, _), (b, _) = slots[0][0], slots[1][0]
        tag = new_tag("auth")
        inboxes = [inbox_for(a), inbox_for(b)]
        assert a.call("send_to", {"to": None, "first": 0, "n": 5, "tag": tag}, timeout=10) == 5
        for inbox in inboxes:
            assert sorted(inbox.wait(tag, 5)) == list(range(5))
        log = cluster.log_text()
        assert "redis+sentinel://:***@127.0.0.1:" in log and PASSWORD not in log
    finally:
        group.stop()


SENTINEL_PASSWORD = "s3cret-of-the-sentinels"


def test_sentinels_with_a_password_of_their_own(
    tmp_path: Path, start_nodes: Any, connect: Any
) -> None:
    """``?sentinel_password=`` (python-socketio: ``sentinel_kwargs``): the sentinels refuse a
    client without it; the workers find the master and status names it; neither password is
    logged."""
    group = SentinelGroup(tmp_path / "sentinel", password=PASSWORD,
                          sentinel_password=SENTINEL_PASSWORD)
    try:
        without = redis.Redis(host="127.0.0.1", port=group.sentinel_ports[0], socket_timeout=2)
        with pytest.raises(redis.RedisError, match="(?i)auth"):
            without.sentinel_get_master_addr_by_name("sioctltest")
        without.close()
        cluster = start_nodes(group.url)
        slots = clients_on_slots(connect, cluster)
        (a, _), (b, _) = slots[0][0], slots[1][0]
        tag = new_tag("sentinel-auth")
        inboxes = [inbox_for(a), inbox_for(b)]
        assert a.call("send_to", {"to": None, "first": 0, "n": 5, "tag": tag}, timeout=10) == 5
        for inbox in inboxes:
            assert sorted(inbox.wait(tag, 5)) == list(range(5))
        status = cluster.wait_for(
            lambda s: s["slots"][0]["messaging"]["topology"].get("master")
            == f"127.0.0.1:{group.master_port}", what="the master in status")
        assert topology_line(status["slots"]) == \
            f"sentinel sioctltest: master 127.0.0.1:{group.master_port}"
        log = cluster.log_text()
        assert PASSWORD not in log and SENTINEL_PASSWORD not in log
        assert "sentinel_password=%2A%2A%2A" in log or "sentinel_password=***" in log, log
    finally:
        group.stop()
