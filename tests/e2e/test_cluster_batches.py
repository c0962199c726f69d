"""The publisher's per-node pipelines on a real 3-master Redis Cluster
(worker/messaging/cluster_batches.py): answers in the batch's order, a channel's messages in
order, and a batch sent with a stale slot map (the channel's slot resharded away) answered
MOVED by the old node and sent again to the new one; a batch whose node died (its replica
promoted) sent again to the new master; on both engines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from sioctl.worker.messaging.cluster_batches import AsyncClusterBatches, ClusterBatches
from tests.support.clients import wait_until
from tests.support.redis_cluster import RedisClusterGroup

READ_TIMEOUT = 10.0
MOVE_TIMEOUT = 20.0
FAILOVER_TIMEOUT = 30.0


@pytest.fixture
def group(tmp_path: Path) -> Iterator[RedisClusterGroup]:
    cluster = RedisClusterGroup(tmp_path / "redis-cluster")
    try:
        yield cluster
    finally:
        cluster.stop()


class Listener:
    """A plain SSUBSCRIBE on the node that serves ``channel`` now."""

    def __init__(self, group: RedisClusterGroup, channel: str) -> None:
        self.port = group.port_of_slot(group.keyslot(channel))
        self.client = group.client(self.port)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.ssubscribe(channel)

    def read(self, count: int) -> list[bytes]:
        """The next ``count`` messages (fewer when READ_TIMEOUT passed)."""
        got: list[bytes] = []
        deadline = time.monotonic() + READ_TIMEOUT
        while len(got) < count and time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None and message["type"] == "smessage":
                got.append(message["data"])
        return got

    def read_tag(self, tag: str, count: int) -> list[bytes]:
        """The next ``count`` messages of ``tag`` (earlier tags' skipped)."""
        got: list[bytes] = []
        deadline = time.monotonic() + READ_TIMEOUT
        while len(got) < count and time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None and message["type"] == "smessage" and \
                    message["data"].startswith(f"{tag}-".encode()):
                got.append(message["data"])
        return got

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


def _batch(channel: str, quiet: str, tag: str, count: int) -> list[tuple[Any, ...]]:
    """``count`` SPUBLISHes to ``channel`` with a SET and an SPUBLISH nobody hears between.
    The SET's key (``_key``) is in the channel's slot: a move or a failover of that slot sends
    it again through the cluster client too, whose answer must be the per-node pipeline's."""
    batch: list[tuple[Any, ...]] = [("spublish", channel, f"{tag}-{i}") for i in range(count)]
    batch.insert(count // 2, ("set", _key(channel, tag), tag))
    batch.insert(count // 2 + 1, ("spublish", quiet, tag))
    return batch


def _key(channel: str, tag: str) -> str:
    """The SET's key in ``_batch``: hash-tagged with the channel, so in the channel's slot."""
    return f"{{{channel}}}key-{tag}"


def _check(batch: list[tuple[Any, ...]], answers: list[Any], listener: Listener, tag: str,
           count: int) -> None:
    expected = [True if args[0] == "set" else 0 if args[1] == "quiet" else 1
                for args in batch]
    assert list(answers) == expected
    assert listener.read(count) == [f"{tag}-{i}".encode() for i in range(count)]


def _move_away(group: RedisClusterGroup, channel: str, listener: Listener) -> Listener:
    """Reshard ``channel``'s slot to another master; a listener subscribed there."""
    slot = group.keyslot(channel)
    away = [p for p in group.ports if p != listener.port][0]
    group.move_slot(slot, away)
    listener.close()
    wait_until(lambda: group.port_of_slot(slot) == away, MOVE_TIMEOUT, what="the move")
    moved = Listener(group, channel)
    assert moved.port == away
    return moved


def test_blocking_batches_follow_a_resharded_slot(group: RedisClusterGroup) -> None:
    channel = "socketio:w:blocking"
    listener = Listener(group, channel)
    cluster = redis.RedisCluster(host="127.0.0.1", port=group.ports[0])
    sender = ClusterBatches(cluster)
    try:
        batch = _batch(channel, "quiet", "before", 20)
        _check(batch, sender.send(batch), listener, "before", 20)
        listener = _move_away(group, channel, listener)
        # The sender still routes the slot to the old node: MOVED, sent again to the new one.
        batch = _batch(channel, "quiet", "after", 20)
        _check(batch, sender.send(batch), listener, "after", 20)
        assert cluster.get(_key(channel, "after")) == b"after"
        batch = _batch(channel, "quiet", "again", 20)
        _check(batch, sender.send(batch), listener, "again", 20)
    finally:
        listener.close()
        cluster.close()


def test_asyncio_batches_follow_a_resharded_slot(group: RedisClusterGroup) -> None:
    channel = "socketio:w:asyncio"
    listener = Listener(group, channel)

    async def run() -> None:
        nonlocal listener
        cluster = redis.asyncio.RedisCluster(host="127.0.0.1", port=group.ports[0])
        sender = AsyncClusterBatches(cluster)
        try:
            batch = _batch(channel, "quiet", "before", 20)
            _check(batch, await sender.send(batch), listener, "before", 20)
            listener = _move_away(group, channel, listener)
            batch = _batch(channel, "quiet", "after", 20)
            _check(batch, await sender.send(batch), listener, "after", 20)
            assert await cluster.get(_key(channel, "after")) == b"after"
            batch = _batch(channel, "quiet", "again", 20)
            _check(batch, await sender.send(batch), listener, "again", 20)
        finally:
            await sender.aclose()
            await cluster.aclose()

    try:
        asyncio.run(run())
    finally:
        listener.close()


def _fail_over(group: RedisClusterGroup, channel: str) -> None:
    """SIGKILL the master serving ``channel``; return once a replica serves its slot."""
    slot = group.keyslot(channel)
    dead = group.port_of_slot(slot)
    alive = next(p for p in group.ports if p != dead)
    group.kill(dead)

    def promoted() -> bool:
        try:
            return group.port_of_slot(slot, ask=alive) != dead and \
                group.client(alive).cluster("info")["cluster_state"] == "ok"
        except Exception:
            return False

    wait_until(promoted, FAILOVER_TIMEOUT, what="a replica promoted for the dead master")
    group.ports.remove(dead)  # the listener and port_of_slot ask the living nodes


def _sent_once(send: Any, channel: str) -> tuple[str, list[tuple[Any, ...]], list[Any]]:
    """A batch that went through (the first tries may find redis-py's map still stale)."""
    tries = iter(range(1_000))
    outcome: list[Any] = []

    def attempt() -> bool:
        tag = f"failover{next(tries)}"
        batch = _batch(channel, "quiet", tag, 20)
        try:
            outcome[:] = [tag, batch, send(batch)]
        except (redis.ConnectionError, redis.TimeoutError, redis.ClusterError,
                redis.exceptions.SlotNotCoveredError):
            return False
        return True

    wait_until(attempt, FAILOVER_TIMEOUT, what="a batch sent after the failover")
    return outcome[0], outcome[1], outcome[2]


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[RedisClusterGroup]:
    cluster = RedisClusterGroup(tmp_path / "redis-cluster", replicas=1)
    try:
        yield cluster
    finally:
        cluster.stop()


def _check_tag(batch: list[tuple[Any, ...]], answers: list[Any], listener: Listener,
               tag: str) -> None:
    assert list(answers) == [True if a[0] == "set" else 0 if a[1] == "quiet" else 1
                             for a in batch]
    assert listener.read_tag(tag, 20) == [f"{tag}-{i}".encode() for i in range(20)]


def test_blocking_batches_follow_a_failover(replicated: RedisClusterGroup) -> None:
    channel = "socketio:w:blocking"
    cluster = redis.RedisCluster(host="127.0.0.1", port=replicated.ports[0])
    sender = ClusterBatches(cluster)
    try:
        sender.send(_batch(channel, "quiet", "before", 20))  # the sender knows the old master
        _fail_over(replicated, channel)
        listener = Listener(replicated, channel)
        try:
            tag, batch, answers = _sent_once(sender.send, channel)
            # The dead master's connection failed: sent again through the cluster client.
            _check_tag(batch, answers, listener, tag)
        finally:
            listener.close()
    finally:
        cluster.close()


def test_asyncio_batches_follow_a_failover(replicated: RedisClusterGroup) -> None:
    channel = "socketio:w:asyncio"

    async def run() -> None:
        cluster = redis.asyncio.RedisCluster(host="127.0.0.1", port=replicated.ports[0])
        sender = AsyncClusterBatches(cluster)
        loop = asyncio.get_running_loop()
        try:
            await sender.send(_batch(channel, "quiet", "before", 20))
            await loop.run_in_executor(None, _fail_over, replicated, channel)
            listener = Listener(replicated, channel)
            try:
                def send(batch: list[tuple[Any, ...]]) -> list[Any]:
                    return asyncio.run_coroutine_threadsafe(sender.send(batch), loop).result()

                tag, batch, answers = await loop.run_in_executor(None, _sent_once, send,
                                                                 channel)
                _check_tag(batch, answers, listener, tag)
            finally:
                listener.close()
        finally:
            await sender.aclose()
            await cluster.aclose()

    asyncio.run(run())
