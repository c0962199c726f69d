"""Cross-worker messaging through sioctl's Redis manager, against a real Redis and real workers.

Every test runs 2 workers on a redis-server of its own, so a ``PSUBSCRIBE socketio*`` monitor
sees their traffic and nothing else, and the test may kill or restart it. The tests that take
``start_nodes`` run on both engines (tests/e2e/conftest.py): a sioctl cluster of eventlet
workers, and one of asyncio workers serving a socketio.AsyncServer app on the asyncio manager.
Messages carry a tag and a sequence number; the tests count them (lost, duplicated, on which
channel) rather than time them.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import os
import re
import signal
import threading
import time
from typing import Any

import pytest
import redis

from sioctl.worker.messaging import envelope
from tests.support.clients import BoundClient, wait_until
from tests.support.cluster import ENGINES, MESSAGING_APPS
from tests.support.messaging import (
    DELIVERY_TIMEOUT,
    WORKERS,
    OwnRedis,
    Sender,
    barrier,
    clients_on_slots,
    inbox_for,
    new_tag,
    stats_once_sent,
    wait_for_owner_records,
)

SHARED_CHANNEL = "socketio"


# --------------------------------------------------------------------------- helpers


class Monitor:
    """Every message published on ``socketio*`` from now on: [(channel, decoded data)]; the
    messages a worker published as one (a JSON array, envelope.joined, on a worker's merged
    channel) one by one, in order, as on that worker's channel."""

    def __init__(self, url: str, pattern: str = SHARED_CHANNEL + "*") -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.pubsub = self.client.pubsub()
        self.pubsub.psubscribe(pattern)
        confirmed = self.pubsub.get_message(timeout=5.0)
        assert confirmed and confirmed["type"] == "psubscribe", confirmed
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                message = self.pubsub.get_message(timeout=0.1)
            except Exception:
                return
            if message and message["type"] == "pmessage":
                channel = envelope.unmerged(message["channel"].decode(), SHARED_CHANNEL)
                with self.lock:
                    self.messages.extend((channel, data) for data in
                                         envelope.messages_in(message["data"]))

    def snapshot(self) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return list(self.messages)

    def tagged(self, tag: str) -> list[tuple[str, dict[str, Any]]]:
        """The emits of 'msg' carrying ``tag``, with their channels."""
        return [(channel, data) for channel, data in self.snapshot() if _tag_of(data) == tag]

    def barrier(self, sender: BoundClient, receiver: BoundClient, to: str) -> None:
        """:func:`barrier`, then wait until this monitor has read the barrier's message too.

        The receiving worker and this monitor are two subscribers of the same PUBLISH: the
        client can have the barrier while the monitor's thread has not read it yet, and a
        snapshot taken then misses it and whatever came just before it. Redis sends one
        subscriber its messages in publish order, so once the monitor holds the barrier it
        holds everything published before it."""
        tag = barrier(sender, receiver, to)
        wait_until(lambda: self.tagged(tag), DELIVERY_TIMEOUT,
                   what=f"the monitor to read the barrier {tag}")

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.pubsub.close()
        self.client.close()


def _tag_of(data: dict[str, Any]) -> str | None:
    if data.get("method") != "emit" or data.get("event") != "msg":
        return None
    payload = data.get("data") or [{}]
    return payload[0].get("tag") if isinstance(payload[0], dict) else None


def _binary_tag_of(data: dict[str, Any]) -> str | None:
    """The tag of a binary emit of 'msg' (its data: [arguments with placeholders, *base64
    attachments], as python-socketio's emit publishes it)."""
    payload = data.get("data") or [[]]
    if data.get("method") != "emit" or not data.get("binary") or not payload[0]:
        return None
    first = payload[0][0]
    return first.get("tag") if isinstance(first, dict) else None


def log_count(cluster: Any, pattern: str) -> int:
    return len(re.findall(pattern, cluster.log_text()))


# ----------------------------------------------------------------------------- tests


def test_targeted_emits_reach_exactly_one_worker(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster, per_slot=2)
    (a, wa), (a2, wa2) = slots[0]
    (b, wb), (b2, _) = slots[1]
    channel_0 = f"{SHARED_CHANNEL}:w:{wa['host_id']}"
    channel_1 = f"{SHARED_CHANNEL}:w:{wb['host_id']}"
    assert wa["own_channel"] == channel_0 and wb["own_channel"] == channel_1
    inbox_b, inbox_a2 = inbox_for(b), inbox_for(a2)
    monitor = Monitor(own_redis.url)
    try:
        # Cross-worker: N emits to a socket of worker 1 go to worker 1's channel only.
        n = 50
        tag = new_tag("cross")
        assert a.call("send_to", {"to": wb["sid"], "n": n, "tag": tag}) == n
        received = inbox_b.wait(tag, n)
        monitor.barrier(a, b, wb["sid"])
        assert received == inbox_b.of(tag) == collections.Counter(range(n))
        published = monitor.tagged(tag)
        assert [channel for channel, _ in published] == [channel_1] * n
        assert all(data["room"] == wb["sid"] for _, data in published)

        # Same worker: an emit to a socket of worker 0 from worker 0 is not published at all.
        before = len(monitor.snapshot())
        tag = new_tag("local")
        assert a.call("send_to", {"to": wa2["sid"], "n": n, "tag": tag}) == n
        assert inbox_a2.wait(tag, n) == collections.Counter(range(n))
        monitor.barrier(a, b, wb["sid"])
        after = monitor.snapshot()[before:]
        # Only this barrier's message (the monitor had read the previous one before ``before``).
        assert after and all(str(_tag_of(data)).startswith("barrier") for _, data in after), after

        # A room emit goes to the shared channel and reaches members on both workers.
        room = new_tag("room")
        assert a.call("join", room) and b.call("join", room)
        inbox_a, inbox_b2 = inbox_for(a), inbox_for(b2)
        tag = new_tag("room-emit")
        assert a2.call("send_to", {"to": room, "n": 5, "tag": tag}) == 5
        assert inbox_a.wait(tag, 5) == collections.Counter(range(5))
        assert inbox_b.wait(tag, 5) == collections.Counter(range(5))
        monitor.barrier(a2, b, wb["sid"])
        assert inbox_a.of(tag) == inbox_b.of(tag) == collections.Counter(range(5))
        assert inbox_b2.total(tag) == 0 and inbox_a2.total(tag) == 0
        published = monitor.tagged(tag)
        assert [channel for channel, _ in published] == [SHARED_CHANNEL] * 5
    finally:
        monitor.stop()


# What python-socketio's pub/sub emit message carries, and sioctl's stamp on it.
EMIT_FIELDS = {"method", "event", "data", "binary", "namespace", "room", "skip_sid", "callback",
               "host_id", "ts", "seq"}


def test_plain_and_binary_emits_to_a_socket_elsewhere_keep_one_order_and_sequence(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    """A plain emit to a socket of another worker (one argument or several, no callback, no
    bytes) is queued straight on its worker's channel (SioctlManagerBase._direct_emit); a
    binary one goes through python-socketio's emit. Mixed, to one socket: each message
    arrives once, in order, with its arguments, every one on the owner's channel in
    python-socketio's message format, and the receiver counts none lost (one sequence)."""
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster)
    (a, _), = slots[0]
    (b, wb), = slots[1]
    n = 90
    tag = new_tag("varied")
    got: list[tuple[dict[str, Any], tuple[Any, ...]]] = []
    lock = threading.Lock()
    b.handle_in_order()

    def on_msg(data: Any, *rest: Any) -> None:
        if isinstance(data, dict) and data.get("tag") == tag:
            with lock:
                got.append((data, rest))

    b.on("msg", on_msg)
    wait_for_owner_records(own_redis.url, [wb])
    monitor = Monitor(own_redis.url)
    try:
        assert a.call("send_varied", {"to": wb["sid"], "n": n, "tag": tag}) == n
        wait_until(lambda: len(got) >= n, DELIVERY_TIMEOUT, what=f"{n} messages {tag}")
        monitor.barrier(a, b, wb["sid"])
        with lock:
            arrived = list(got)
        assert [data["i"] for data, _ in arrived] == list(range(n))
        for data, rest in arrived:
            i = data["i"]
            assert rest == ((f"second-{i}",) if i % 3 == 1 else ()), (i, rest)
            assert data.get("blob") == (bytes([i % 256, 0, 255]) if i % 3 == 2 else None)
        published = [(channel, message) for channel, message in monitor.snapshot()
                     if _tag_of(message) == tag or _binary_tag_of(message) == tag]
        assert [channel for channel, _ in published] == [wb["own_channel"]] * n
        assert all(set(message) == EMIT_FIELDS for _, message in published), published[:3]
        assert [message["binary"] for _, message in published] == [i % 3 == 2 for i in range(n)]
        seqs = [message["seq"] for _, message in published]
        assert seqs == list(range(seqs[0], seqs[0] + n))
        assert b.call("manager_stats")["lost"] == 0
    finally:
        monitor.stop()


def test_owner_lookups_are_remembered(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    """A worker asks Redis who owns a socket once, not on every emit to it (owners.py)."""
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster)
    (a, _), (b, wb) = slots[0][0], slots[1][0]
    stats = redis.Redis.from_url(own_redis.url)
    try:
        before = _get_calls(stats)
        tag = new_tag("cached")
        inbox = inbox_for(b)  # listening before the first message can arrive
        assert a.call("send_to", {"to": wb["sid"], "n": 200, "tag": tag}) == 200
        assert inbox.wait(tag, 200) == collections.Counter(range(200))
        lookups = _get_calls(stats) - before
    finally:
        stats.close()
    assert 1 <= lookups <= 2, f"{lookups} owner lookups for 200 emits to one socket"


def _get_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_get", {}).get("calls", 0))


def test_240_concurrent_senders_lose_nothing(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster)
    (a, wa), (b, wb) = slots[0][0], slots[1][0]
    inbox_a, inbox_b = inbox_for(a), inbox_for(b)
    senders, each = 240, 25
    total = senders * each
    order = {"senders": senders, "each": each, "pause": 0.1}
    tag_ab, tag_ba = new_tag("storm-ab"), new_tag("storm-ba")
    wait_for_owner_records(own_redis.url, [wa, wb])
    monitor = Monitor(own_redis.url)
    try:
        assert a.call("storm", {**order, "to": wb["sid"], "tag": tag_ab}) == total
        assert b.call("storm", {**order, "to": wa["sid"], "tag": tag_ba}) == total
        inbox_b.wait(tag_ab, total, timeout=20.0)
        inbox_a.wait(tag_ba, total, timeout=20.0)
        monitor.barrier(a, b, wb["sid"])
        monitor.barrier(b, a, wa["sid"])
        assert inbox_b.of(tag_ab) == collections.Counter(range(total))
        assert inbox_a.of(tag_ba) == collections.Counter(range(total))
        # Each emit was published once, to the receiver's worker only.
        assert collections.Counter(c for c, _ in monitor.tagged(tag_ab)) == {
            wb["own_channel"]: total
        }
        assert collections.Counter(c for c, _ in monitor.tagged(tag_ba)) == {
            wa["own_channel"]: total
        }
    finally:
        monitor.stop()
    for client in (a, b):
        stats = client.call("manager_stats")
        assert stats["dropped"] == 0 and stats["subscribed"], stats
    assert "Too many connections" not in cluster.log_text()
    assert log_count(cluster, "NOT SUBSCRIBED") == 0


def test_listeners_resubscribe_after_client_kill(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    cluster = start_nodes(own_redis.url)
    pids = cluster.worker_pids()
    slots = clients_on_slots(connect, cluster)
    (a, wa), (b, wb) = slots[0][0], slots[1][0]
    inbox_a, inbox_b = inbox_for(a), inbox_for(b)
    ab = Sender(a, wb["sid"], new_tag("kill-ab")).start()
    ba = Sender(b, wa["sid"], new_tag("kill-ba")).start()
    try:
        inbox_b.wait(ab.tag, 10)
        inbox_a.wait(ba.tag, 10)
        admin = own_redis.client()
        try:
            killed = admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        finally:
            admin.close()
        killed_at = time.monotonic()
        assert killed == WORKERS, f"expected one subscriber per worker, killed {killed}"
        # Delivery works again: a message sent after the kill arrives, both ways.
        wait_until(
            lambda: ab.sent_after(killed_at) & set(inbox_b.of(ab.tag)), DELIVERY_TIMEOUT,
            what="worker 0 -> worker 1 delivery after CLIENT KILL",
        )
        wait_until(
            lambda: ba.sent_after(killed_at) & set(inbox_a.of(ba.tag)), DELIVERY_TIMEOUT,
            what="worker 1 -> worker 0 delivery after CLIENT KILL",
        )
    finally:
        ab.stop()
        ba.stop()
    barrier(a, b, wb["sid"])
    barrier(b, a, wa["sid"])
    for sender, inbox in ((ab, inbox_b), (ba, inbox_a)):
        got = inbox.of(sender.tag)
        sent = {i for i, _ in sender.sent}
        assert set(got) <= sent and max(got.values()) == 1, got
    wait_until(lambda: log_count(cluster, "subscribed again") >= WORKERS, 5.0,
               what="'subscribed again' in the worker log")
    log = cluster.log_text()
    assert log_count(cluster, "NOT SUBSCRIBED") == WORKERS, log
    assert log.index("NOT SUBSCRIBED") < log.index("subscribed again")
    assert cluster.worker_pids() == pids
    print(f"CLIENT KILL: lost {len(ab.sent) - len(inbox_b.of(ab.tag))}/{len(ab.sent)} a->b, "
          f"{len(ba.sent) - len(inbox_a.of(ba.tag))}/{len(ba.sent)} b->a")


def test_redis_restart_during_traffic(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    cluster = start_nodes(own_redis.url)
    pids = cluster.worker_pids()
    slots = clients_on_slots(connect, cluster)
    (a, _), (b, wb) = slots[0][0], slots[1][0]
    inbox_b = inbox_for(b)
    ab = Sender(a, wb["sid"], new_tag("restart")).start()
    try:
        # Steady traffic, every message so far delivered, then Redis goes away.
        inbox_b.wait(ab.tag, 20)
        delivered = {i for i, _ in ab.sent}
        wait_until(lambda: delivered <= set(inbox_b.of(ab.tag)), DELIVERY_TIMEOUT,
                   what="the messages sent before the outage")
        stats_before = a.call("manager_stats")
        counted_from = time.monotonic()
        own_redis.stop()
        down_at = time.monotonic()
        # Local service goes on without Redis.
        for i in range(5):
            assert a.call("echo", {"n": i}, timeout=DELIVERY_TIMEOUT) == {"n": i}
            assert b.call("echo", {"n": i}, timeout=DELIVERY_TIMEOUT) == {"n": i}
            time.sleep(0.2)
        own_redis.start()
        up_at = time.monotonic()
        resumed = wait_until(
            lambda: ab.sent_after(up_at) & set(inbox_b.of(ab.tag)), 15.0,
            what="cross-worker delivery after the Redis restart",
        )
        resumed_at = max(at for i, at in ab.sent if i in resumed)
        time.sleep(1.0)  # steady traffic after the recovery
    finally:
        ab.stop()
    barrier(a, b, wb["sid"])
    stats_after = stats_once_sent(a)
    got = inbox_b.of(ab.tag)
    sent = {i for i, _ in ab.sent}
    while_down = {i for i, at in ab.sent if down_at <= at < up_at}
    after = ab.sent_after(resumed_at)
    assert not ab.errors, ab.errors
    assert set(got) <= sent and max(got.values()) == 1, "duplicates or unknown messages"
    assert delivered <= set(got)
    assert after - set(got) == set(), "lost messages sent after delivery resumed"
    assert cluster.worker_pids() == pids
    # The publisher kept what was emitted while Redis was away and sent it afterwards.
    assert stats_after["dropped"] == 0 and stats_after["queued"] == 0, stats_after
    published = stats_after["published"] - stats_before["published"]
    assert published >= len(ab.sent_after(counted_from)), (stats_before, stats_after)
    # The outage is named once per worker, not once per message.
    log = cluster.log_text()
    not_subscribed = log_count(cluster, "NOT SUBSCRIBED")
    publisher_errors = log_count(cluster, r"Redis publisher[^:]*: (?!connected again)")
    owner_warnings = log_count(cluster, "cannot look up the owner")
    print(
        f"Redis restart: sent {len(sent)} ({len(while_down)} while down), received "
        f"{len(got)} ({len(set(got) & while_down)} of those sent while down); worker 0 "
        f"published {published} commands; log: {not_subscribed} NOT SUBSCRIBED, "
        f"{publisher_errors} publisher errors, {owner_warnings} owner-lookup warnings"
    )
    assert 1 <= not_subscribed <= WORKERS, log
    assert log_count(cluster, "subscribed again") == not_subscribed, log
    assert publisher_errors <= WORKERS, log
    assert owner_warnings <= WORKERS, (
        f"{owner_warnings} 'cannot look up the owner' warnings for {len(while_down)} "
        f"messages sent during one outage"
    )


def test_targeted_delivery_survives_a_redis_restart(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    """Redis keeps no data across a restart here (like any cache without persistence): the
    workers must record again which sockets they own, or every emit to a socket of another
    worker goes to every worker from then on."""
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster)
    (a, _), (b, wb) = slots[0][0], slots[1][0]
    inbox_b = inbox_for(b)
    own_redis.stop()
    own_redis.start()
    # Cross-worker delivery works again (poll: subscribers only hear what follows them).
    wait_until(lambda: _delivered(a, b, wb["sid"]), 15.0, what="delivery after the restart")
    monitor = Monitor(own_redis.url)
    try:
        # Worker 0 may have looked worker 1's socket up before worker 1 recorded it again, and
        # remembers "nobody" for OwnerCache.unknown_ttl: targeted routing comes back after that.
        wait_until(lambda: _routed_to(monitor, a, b, wb), 15.0, what="targeted routing")
        tag = new_tag("after-restart")
        assert a.call("send_to", {"to": wb["sid"], "n": 20, "tag": tag}) == 20
        assert inbox_b.wait(tag, 20) == collections.Counter(range(20))
        monitor.barrier(a, b, wb["sid"])
        channels = collections.Counter(channel for channel, _ in monitor.tagged(tag))
    finally:
        monitor.stop()
    assert channels == {wb["own_channel"]: 20}, (
        f"emits to a socket of worker 1 after a Redis restart were published on {channels}"
    )


def _routed_to(monitor: Monitor, sender: BoundClient, receiver: BoundClient,
               worker: dict[str, Any]) -> bool:
    """Send one message to ``receiver``; True if it went on ``worker``'s own channel."""
    tag = new_tag("route")
    inbox = inbox_for(receiver)  # before the message can arrive
    sender.call("send_to", {"to": worker["sid"], "n": 1, "tag": tag}, timeout=DELIVERY_TIMEOUT)
    inbox.wait(tag, 1)
    monitor.barrier(sender, receiver, worker["sid"])
    return [channel for channel, _ in monitor.tagged(tag)] == [worker["own_channel"]]


def _delivered(sender: BoundClient, receiver: BoundClient, sid: str) -> bool:
    """Send one message from ``sender``'s worker to ``sid``; True if it arrives within 1 s."""
    tag = new_tag("probe")
    inbox = inbox_for(receiver)  # before the message can arrive
    sender.call("send_to", {"to": sid, "n": 1, "tag": tag}, timeout=DELIVERY_TIMEOUT)
    try:
        inbox.wait(tag, 1, timeout=1.0)
    except AssertionError:
        return False
    return True


def test_owner_records_come_back_after_a_redis_restart(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    """A restarted Redis has lost every socket's owner record; each worker writes its own
    again as soon as its reader is back (``_reclaim_now``), not at the next refresh. Each
    worker has looked the other's socket up before (a GET on its manager's client): the
    pooled connection that left is closed by the restart and is the one the rewrite takes
    first, found closed only when used (redis.asyncio; redis-py's blocking client under
    eventlet with hiredis, scripts/test-hiredis.sh): the rewrite tries again on a new one."""
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster)
    (a, wa), (b, wb) = slots[0][0], slots[1][0]
    admin = own_redis.client()
    try:
        keys = {f"{SHARED_CHANNEL}:owner:/:{info['sid']}": info["host_id"] for info in (wa, wb)}
        wait_until(lambda: _owners(admin, keys) == keys, DELIVERY_TIMEOUT, what="records")
        for sender, receiver, sid in ((a, b, wb["sid"]), (b, a, wa["sid"])):
            wait_until(functools.partial(_delivered, sender, receiver, sid), DELIVERY_TIMEOUT,
                       what="a targeted emit to the other worker's socket")
        own_redis.stop()
        own_redis.start()
        admin.close()
        admin = own_redis.client()
        # OWNER_REFRESH is 20 s: within 10 s the records came back by the reader's return.
        wait_until(lambda: _owners(admin, keys) == keys, DELIVERY_TIMEOUT,
                   what="owner records written again after the restart")
    finally:
        admin.close()


def _owners(client: redis.Redis, keys: dict[str, str]) -> dict[str, str | None]:
    with contextlib.suppress(redis.RedisError):
        return {key: (client.get(key) or b"").decode() or None for key in keys}
    return {}


@pytest.mark.parametrize("stale", ["gone", "sender"])
def test_emits_on_a_stale_owner_record_are_forwarded(
    own_redis: OwnRedis, start_nodes: Any, connect: Any, stale: str
) -> None:
    """The owner record of worker 1's socket names another worker: one that is gone (nobody
    receives on its channel: the sender passes the message on, ``_unheard``) or the sender
    itself (it hears the message on its own channel for a socket it does not hold and passes
    it on, ``routing.misdelivered``). Either way each message reaches the client once, by the
    shared channel, marked forwarded, and nothing counts as lost."""
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster)
    (a, wa), (b, wb) = slots[0][0], slots[1][0]
    owner = "0" * 32 if stale == "gone" else wa["host_id"]
    stale_channel = f"{SHARED_CHANNEL}:w:{owner}"
    key = f"{SHARED_CHANNEL}:owner:/:{wb['sid']}"
    admin = own_redis.client()
    wait_until(lambda: admin.get(key), DELIVERY_TIMEOUT, what="worker 1's owner record")
    admin.set(key, owner, px=60_000)  # before worker 0 ever looks this socket up
    admin.close()
    inbox = inbox_for(b)
    # A pattern subscriber would count as a receiver on the gone worker's channel (design.md
    # §9): watch the shared channel only then.
    monitor = Monitor(own_redis.url, SHARED_CHANNEL if stale == "gone" else SHARED_CHANNEL + "*")
    try:
        tag = new_tag("stale")
        assert a.call("send_to", {"to": wb["sid"], "n": 20, "tag": tag}) == 20
        assert inbox.wait(tag, 20) == collections.Counter(range(20))
        monitor.barrier(a, b, wb["sid"])
        published = monitor.tagged(tag)
    finally:
        monitor.stop()
    assert inbox.of(tag) == collections.Counter(range(20))
    if stale == "sender":
        assert [c for c, _ in published].count(stale_channel) == 20, published
    forwarded = [data for c, data in published if c == SHARED_CHANNEL]
    assert len(forwarded) == 20 and all(data.get("forwarded") for data in forwarded)
    assert b.call("manager_stats")["lost"] == 0


def test_messages_for_a_worker_of_an_earlier_sioctl_are_not_lost(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    """Nodes upgraded one at a time: worker 1's socket is owned, as far as Redis says, by a
    worker of an earlier sioctl, which reads one message per PUBLISH on its own channel and
    knows nothing of merged channels (here a plain subscriber stands in for it). The 20 emits
    worker 0 makes to that socket in one go would be merged; the stand-in never gets a JSON
    array (which an earlier worker ignores: lost), and each emit arrives exactly once, either
    on its channel or passed on through the shared channel to the socket's real worker."""
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster)
    (a, _), (b, wb) = slots[0][0], slots[1][0]
    earlier = "e" * 32
    key = f"{SHARED_CHANNEL}:owner:/:{wb['sid']}"
    admin = own_redis.client()
    stand_in = admin.pubsub()
    stand_in.subscribe(f"{SHARED_CHANNEL}:w:{earlier}")
    assert stand_in.get_message(timeout=5.0)["type"] == "subscribe"
    wait_until(lambda: admin.get(key), DELIVERY_TIMEOUT, what="worker 1's owner record")
    admin.set(key, earlier, px=60_000)  # before worker 0 ever looks this socket up
    inbox = inbox_for(b)
    heard: list[Any] = []
    try:
        tag = new_tag("earlier")
        assert a.call("send_to", {"to": wb["sid"], "n": 20, "tag": tag}) == 20

        def accounted() -> bool:
            while (message := stand_in.get_message(timeout=0.05)) is not None:
                heard.append(json.loads(message["data"]))
            return sum(inbox.of(tag).values()) + len(heard) >= 20

        wait_until(accounted, DELIVERY_TIMEOUT, what="every emit at the stand-in or the client")
    finally:
        stand_in.close()
        admin.close()
    assert all(isinstance(data, dict) for data in heard), heard
    by_stand_in = collections.Counter(data["data"][0]["i"] for data in heard)
    delivered = inbox.of(tag)
    assert delivered + by_stand_in == collections.Counter(range(20))
    # The emits went out together: most were merged, and so passed on (else this test
    # shows nothing about merged PUBLISHes).
    assert sum(delivered.values()) >= 2, (delivered, by_stand_in)


def test_figures_show_the_traffic(own_redis: OwnRedis, start_nodes: Any, connect: Any) -> None:
    """``figures()`` (what status and the metrics show): what one worker published, what
    the other heard (latency samples), nothing lost or dropped."""
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster)
    (a, _), (b, wb) = slots[0][0], slots[1][0]
    inbox = inbox_for(b)
    tag = new_tag("figures")
    assert a.call("send_to", {"to": wb["sid"], "n": 30, "tag": tag}) == 30
    inbox.wait(tag, 30)
    sender, receiver = a.call("figures"), b.call("figures")
    assert sender["subscribed"] and receiver["subscribed"]
    assert sender["published"] >= 30 and sender["batches"] >= 1
    assert sender["dropped"] == 0 and sender["outages"] == 0
    assert receiver["latency"]["count"] >= 30 and receiver["lost"] == 0
    assert receiver["latency"]["buckets"]["+Inf"] == receiver["latency"]["count"]


@pytest.mark.parametrize("engine", ENGINES)
def test_sigkilled_worker_leaves_the_other_unaffected(
    own_redis: OwnRedis, start_cluster: Any, connect: Any, engine: str
) -> None:
    cluster = start_cluster(MESSAGING_APPS[engine], workers=WORKERS, redis_url=own_redis.url)
    pids = cluster.worker_pids()
    slots = clients_on_slots(connect, cluster, per_slot=2)
    (b1, w1), (b2, w2) = slots[1]
    room = new_tag("room")
    assert b1.call("join", room) and b2.call("join", room)
    inbox_1, inbox_2 = inbox_for(b1), inbox_for(b2)
    direct = Sender(b1, w2["sid"], new_tag("direct")).start()
    to_room = Sender(b2, room, new_tag("room-emit")).start()
    try:
        inbox_2.wait(direct.tag, 10)
        os.kill(pids[0], signal.SIGKILL)
        cluster.wait_for(
            lambda s: any(
                e["slot"] == 0 and e.get("pid") not in (None, pids[0]) and e["state"] == "ready"
                for e in s["slots"]
            ),
            what="slot 0 respawned",
        )
        time.sleep(0.5)
    finally:
        direct.stop()
        to_room.stop()
    barrier(b1, b2, w2["sid"])
    barrier(b2, b1, room)
    sent_direct = collections.Counter(i for i, _ in direct.sent)
    sent_room = collections.Counter(i for i, _ in to_room.sent)
    assert not direct.errors and not to_room.errors
    assert inbox_2.of(direct.tag) == sent_direct
    assert inbox_1.of(to_room.tag) == sent_room
    assert inbox_2.of(to_room.tag) == sent_room
    after = cluster.worker_pids()
    assert after[1] == pids[1] and after[0] != pids[0]
    print(f"SIGKILL: {len(sent_direct)} direct and {len(sent_room)} room messages on slot 1, "
          "all delivered once")
