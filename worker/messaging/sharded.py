"""Sharded pub/sub on a Redis Cluster (``redis+cluster://``, issue 20): which command publishes
and subscribes, and a subscription that reads the shards its channels live on.

On a single Redis (and through Sentinel) the manager PUBLISHes and SUBSCRIBEs as before. On a
cluster, a PUBLISH goes to every node over the cluster bus; SPUBLISH goes to the shard that
serves the channel's slot only, and SSUBSCRIBE is served there: each worker's own channel
(``socketio:w:<host id>``, whose slot follows from its random host id) lands on a shard of its
own, so targeted emits spread over the shards, while the shared channel's broadcasts are served
by one shard. SPUBLISH answers how many subscribers of that shard received the message, as
PUBLISH does, so the publisher's "nobody heard it" forwarding works unchanged.

:class:`ShardedSubscription` (blocking) and :class:`AsyncShardedSubscription` subscribe to each
channel on the master of its slot (one plain connection per node, one SSUBSCRIBE per channel:
a node refuses channels of several slots in one command) and read them all through the
``get_message`` the readers already call. Redis unsubscribes a shard channel's subscribers when
its slot leaves the node (a resharding, or a failover that demoted the node): the subscription
then raises ``ConnectionError``, the reader's usual reconnect (``reading.ReaderBase``) makes a
new cluster client, which reads the new slot map, and subscribes on the new owner. A dead node
fails its connection the same way; until a replica is promoted the slot is not served and the
reader retries on its backoff. redis-py's own ``ClusterPubSub`` does this bookkeeping with a
thread pool of its own and reads its nodes' connections in turn, one ``get_message`` timeout
each: neither suits a reader that waits for whichever shard speaks first.
"""

from __future__ import annotations

import asyncio
import collections
import select
from typing import Any

import redis
import redis.asyncio

from sioctl.worker.redis_cluster import is_cluster_client

from .pubsub_read import whole_message

__all__ = ["AsyncShardedSubscription", "ShardedSubscription", "async_numsub",
           "async_subscribe", "numsub", "publish_verb", "subscribe"]


def publish_verb(client: Any) -> str:
    """The command a publisher sends on ``client``'s Redis: ``spublish`` on a cluster."""
    return "spublish" if is_cluster_client(client) else "publish"


def subscribe(client: Any, channels: list[str]) -> Any:
    """A subscription to ``channels`` with ``get_message``/``close``: a plain pub/sub, or on a
    cluster a :class:`ShardedSubscription`."""
    if is_cluster_client(client):
        return ShardedSubscription(client, channels)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(*channels)
    return pubsub


async def async_subscribe(client: Any, channels: list[str]) -> Any:
    """:func:`subscribe` on ``redis.asyncio``."""
    if is_cluster_client(client):
        return await AsyncShardedSubscription.open(client, channels)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(*channels)
    except BaseException:
        await pubsub.aclose()
        raise
    return pubsub


def numsub(client: Any, channel: str) -> Any:
    """``PUBSUB NUMSUB channel`` (on a cluster: ``SHARDNUMSUB`` on the channel's shard), as
    redis-py answers it: [(channel, count)]."""
    if is_cluster_client(client):
        return client.pubsub_shardnumsub(channel, target_nodes=client.get_node_from_key(channel))
    return client.pubsub_numsub(channel)


async def async_numsub(client: Any, channel: str) -> Any:
    """:func:`numsub` on ``redis.asyncio``."""
    if is_cluster_client(client):
        await client.initialize()
        return await client.pubsub_shardnumsub(channel,
                                               target_nodes=client.get_node_from_key(channel))
    return await client.pubsub_numsub(channel)


def _grouped(cluster: Any, channels: list[str]) -> dict[str, tuple[Any, list[str]]]:
    """The channels per node serving their slots (raises SlotNotCoveredError while a slot has
    no master)."""
    nodes: dict[str, tuple[Any, list[str]]] = {}
    for channel in channels:
        node = cluster.get_node_from_key(channel)
        nodes.setdefault(node.name, (node, []))[1].append(channel)
    return nodes


def _checked(message: Any) -> Any:
    """A message as a plain subscription gives it (``smessage`` read as ``message``); None for
    a subscription confirmation; raises ConnectionError when the node dropped a channel (its
    slot moved: read the slot map again and subscribe where it is now)."""
    if message is None:
        return None
    kind = message.get("type")
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind == "smessage":
        return {**message, "type": "message"}
    if kind == "sunsubscribe":
        channel = message.get("channel")
        channel = channel.decode() if isinstance(channel, bytes) else channel
        raise redis.ConnectionError(f"shard channel {channel} left its node (slot moved)")
    return None if kind == "ssubscribe" else message


class ShardedSubscription:
    """Blocking: one plain pub/sub connection per node, each channel SSUBSCRIBEd on the node
    serving its slot; :meth:`get_message` returns whichever speaks first."""

    def __init__(self, cluster: Any, channels: list[str]) -> None:
        self.cluster = cluster
        self.pubsubs: list[Any] = []
        self.nodes: list[str] = []
        try:
            for name, (node, names) in _grouped(cluster, channels).items():
                pubsub = cluster.get_redis_connection(node).pubsub()
                self.pubsubs.append(pubsub)
                self.nodes.append(name)
                for channel in names:
                    pubsub.ssubscribe(channel)
        except BaseException:
            self.close()
            raise
        self._turn = 0

    def _poll(self) -> Any:
        """A message any connection holds already (no waiting), taking them in turn."""
        count = len(self.pubsubs)
        for i in range(count):
            pubsub = self.pubsubs[(self._turn + i) % count]
            message = _checked(whole_message(pubsub, timeout=0))
            if message is not None:
                self._turn = (self._turn + i + 1) % count
                return message
        return None

    def get_message(self, ignore_subscribe_messages: bool = True,
                    timeout: float = 0.0) -> Any:
        """The next message on any node, waiting up to ``timeout`` seconds (None: none came).
        ``ignore_subscribe_messages``: always (confirmations are never returned)."""
        if len(self.pubsubs) == 1:
            return _checked(whole_message(self.pubsubs[0], timeout=timeout))
        message = self._poll()
        if message is None and timeout:
            sockets = [p.connection._sock for p in self.pubsubs
                       if p.connection is not None and p.connection._sock is not None]
            # Green under eventlet's monkey-patching, as the plain pub/sub's own wait is.
            select.select(sockets, [], [], timeout)
            message = self._poll()
        return message

    def close(self) -> None:
        for pubsub in self.pubsubs:
            try:
                pubsub.close()
            except Exception:
                pass
        try:
            self.cluster.close()
        except Exception:
            pass


class AsyncShardedSubscription:
    """asyncio: as :class:`ShardedSubscription`; each node's connection is read by a task of
    its own (kept across calls, so no read is ever cut in the middle), and
    :meth:`get_message` returns whichever answered first."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.clients: list[Any] = []
        self.pubsubs: list[Any] = []
        self.nodes: list[str] = []
        self._reads: dict[asyncio.Task[Any], Any] = {}
        self._ready: collections.deque[Any] = collections.deque()

    @classmethod
    async def open(cls, cluster: Any, channels: list[str]) -> AsyncShardedSubscription:
        """Subscribed to each of ``channels`` on the master serving its slot."""
        self = cls(cluster)
        try:
            await cluster.initialize()
            for name, (node, names) in _grouped(cluster, channels).items():
                pool = redis.asyncio.ConnectionPool(connection_class=node.connection_class,
                                                    **node.connection_kwargs)
                client = redis.asyncio.Redis(connection_pool=pool)
                self.clients.append(client)
                pubsub = client.pubsub()
                self.pubsubs.append(pubsub)
                self.nodes.append(name)
                for channel in names:
                    await pubsub.ssubscribe(channel)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def get_message(self, ignore_subscribe_messages: bool = True,
                          timeout: float = 0.0) -> Any:
        """The next message on any node, waiting up to ``timeout`` seconds (None: none came)."""
        if self._ready:
            return self._ready.popleft()
        if len(self.pubsubs) == 1:
            return _checked(await self.pubsubs[0].get_message(timeout=timeout))
        reading = set(self._reads.values())
        for pubsub in self.pubsubs:
            if pubsub not in reading:
                task = asyncio.ensure_future(pubsub.get_message(timeout=timeout))
                self._reads[task] = pubsub
        done, _ = await asyncio.wait(self._reads, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            del self._reads[task]
            message = _checked(task.result())
            if message is not None:
                self._ready.append(message)
        return self._ready.popleft() if self._ready else None

    async def aclose(self) -> None:
        for task in self._reads:
            task.cancel()
        if self._reads:
            await asyncio.gather(*self._reads, return_exceptions=True)
        self._reads.clear()
        for thing in [*self.pubsubs, *self.clients, self.cluster]:
            try:
                await thing.aclose()
            except Exception:
                pass
