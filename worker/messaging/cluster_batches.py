"""A publisher's batch on a Redis Cluster: one plain pipeline per node (issue 20).

redis-py's cluster pipeline costs ~15 µs of CPU per SPUBLISH against ~5 µs per PUBLISH through
its plain pipeline (docs/benchmarks.md, "Redis Cluster"): it works out every command's slot
(a third of that cost), wraps each command in objects of its own and routes them one by one.
A publisher's commands name few keys: its SPUBLISHes go to the worker channels and the
broadcast channel, so :class:`ClusterBatches` works out a channel's slot once (redis-py's
``keyslot``), keeps which node serves each slot, and sends each batch as one plain pipeline
per node, through the per-node client ``RedisCluster`` keeps (asyncio: a plain client per
node made from the node's connection options, as :mod:`.sharded` does).

What is kept from the publisher's contract (:mod:`.outbox`): the answers come back in the
batch's order; a channel's commands go to one node in one pipeline, so their order holds;
a command answered MOVED/ASK/TRYAGAIN/CLUSTERDOWN, or sent on a node whose connection failed,
is sent again, in the batch's order, through the cluster client's own ``execute_command``
(which follows MOVED and ASK and refreshes the slot map: redis-py's), after the kept nodes are
forgotten; when that fails too, the error is raised and the shell keeps the whole batch queued
and sends it again (as with redis-py's cluster pipeline, the part other nodes took may then
go out twice). A reply error (WRONGTYPE...) is an answer, as in a plain pipeline with
``raise_on_error=False``.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
from redis.exceptions import AskError, ClusterDownError, MovedError, TryAgainError

__all__ = ["AsyncClusterBatches", "ClusterBatches"]

# Answers that mean "not here, not now": the command is sent again through the cluster client.
_REDIRECTED = (MovedError, AskError, TryAgainError, ClusterDownError)
# Commands whose first argument is a channel, whose slot is kept (channels are few).
_CHANNEL_COMMANDS = frozenset({"spublish", "publish"})


class _Routes:
    """Which node serves each command of a batch: the slots of the channels (kept for good:
    a name's slot never changes) and the node of each slot (forgotten whenever a node
    refused or failed)."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self._channel_slots: dict[Any, int] = {}
        self._slot_nodes: dict[int, Any] = {}

    def slot(self, args: tuple[Any, ...]) -> int:
        """The slot of a command's key: a channel's, kept; EVAL's first key (its keys share a
        slot, or the cluster refuses the script); any other command's first argument."""
        if args[0] in _CHANNEL_COMMANDS:
            channel = args[1]
            slot = self._channel_slots.get(channel)
            if slot is None:
                slot = self._channel_slots[channel] = self.cluster.keyslot(channel)
            return slot
        return int(self.cluster.keyslot(args[3] if args[0] in ("eval", "evalsha")
                                        else args[1]))

    def node(self, slot: int) -> Any:
        """The master serving ``slot`` in the cluster client's slot map (raises
        SlotNotCoveredError while nobody serves it)."""
        node = self._slot_nodes.get(slot)
        if node is None:
            node = self._slot_nodes[slot] = \
                self.cluster.nodes_manager.get_node_from_slot(slot)
        return node

    def grouped(self, batch: list[tuple[Any, ...]]) -> dict[str, tuple[Any, list[int]]]:
        """The batch's positions per node name, each list in the batch's order."""
        nodes: dict[str, tuple[Any, list[int]]] = {}
        for i, args in enumerate(batch):
            node = self.node(self.slot(args))
            group = nodes.get(node.name)
            if group is None:
                group = nodes[node.name] = (node, [])
            group[1].append(i)
        return nodes

    def forget_nodes(self) -> None:
        self._slot_nodes.clear()


def _take(results: list[Any], positions: list[int], answers: Any, again: list[int]) -> None:
    """One node's answers into ``results``; the redirected positions into ``again``."""
    for i, answer in zip(positions, answers, strict=True):
        if isinstance(answer, _REDIRECTED):
            again.append(i)
        else:
            results[i] = answer


def _resent(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` with the command's name as the cluster client's response callbacks are keyed
    (upper case): redis-py 8's asyncio ``RedisCluster`` looks a callback up by the name as
    given, so a resent ``set`` answered ``b'OK'`` where the per-node pipelines (and the
    blocking client) answer ``True``."""
    name = args[0]
    return (name.upper(), *args[1:]) if isinstance(name, str) else args


def _answer_of_error(exc: redis.ResponseError) -> Any:
    """A reply error the cluster client raised for a resent command, kept as its answer (a
    redirection it could not follow is raised on)."""
    if isinstance(exc, _REDIRECTED):
        raise exc
    return exc


class ClusterBatches:
    """Blocking: sends a publisher's batches on a ``redis.RedisCluster``."""

    def __init__(self, cluster: redis.RedisCluster) -> None:
        self.cluster = cluster
        self.routes = _Routes(cluster)

    def send(self, batch: list[tuple[Any, ...]]) -> list[Any]:
        """Redis's answers to ``batch``, in its order; raises when part of it could not be
        sent (the caller sends it all again later)."""
        results: list[Any] = [None] * len(batch)
        again: list[int] = []
        for node, positions in self.routes.grouped(batch).values():
            try:
                pipe = self.cluster.get_redis_connection(node).pipeline(transaction=False)
                for i in positions:
                    pipe.execute_command(*batch[i])
                answers = pipe.execute(raise_on_error=False)
            except (redis.ConnectionError, redis.TimeoutError):
                again.extend(positions)
                continue
            _take(results, positions, answers, again)
        if again:
            self._send_again(batch, sorted(again), results)
        return results

    def _send_again(self, batch: list[tuple[Any, ...]], positions: list[int],
                    results: list[Any]) -> None:
        """Through the cluster client, one by one in the batch's order: it follows MOVED/ASK
        and reads the slot map again (and raises when the node is still away)."""
        self.routes.forget_nodes()
        for i in positions:
            try:
                results[i] = self.cluster.execute_command(*_resent(batch[i]))
            except redis.ResponseError as exc:
                results[i] = _answer_of_error(exc)


class AsyncClusterBatches:
    """asyncio: sends a publisher's batches on a ``redis.asyncio.RedisCluster``, one plain
    client per node (closed by :meth:`aclose`)."""

    def __init__(self, cluster: redis.asyncio.RedisCluster) -> None:
        self.cluster = cluster
        self.routes = _Routes(cluster)
        self._clients: dict[str, redis.asyncio.Redis] = {}

    def _client(self, node: Any) -> redis.asyncio.Redis:
        client = self._clients.get(node.name)
        if client is None:
            pool = redis.asyncio.ConnectionPool(connection_class=node.connection_class,
                                                **node.connection_kwargs)
            client = self._clients[node.name] = redis.asyncio.Redis(connection_pool=pool)
        return client

    async def send(self, batch: list[tuple[Any, ...]]) -> list[Any]:
        """Redis's answers to ``batch``, in its order; raises when part of it could not be
        sent (the caller sends it all again later)."""
        await self.cluster.initialize()  # a new client learns the slot map first (once)
        results: list[Any] = [None] * len(batch)
        again: list[int] = []
        for node, positions in self.routes.grouped(batch).values():
            try:
                pipe = self._client(node).pipeline(transaction=False)
                for i in positions:
                    pipe.execute_command(*batch[i])
                answers = await pipe.execute(raise_on_error=False)
            except (redis.ConnectionError, redis.TimeoutError):
                await self._drop(node.name)
                again.extend(positions)
                continue
            _take(results, positions, answers, again)
        if again:
            await self._send_again(batch, sorted(again), results)
        return results

    async def _send_again(self, batch: list[tuple[Any, ...]], positions: list[int],
                          results: list[Any]) -> None:
        """As :meth:`ClusterBatches._send_again`."""
        self.routes.forget_nodes()
        for i in positions:
            try:
                results[i] = await self.cluster.execute_command(*_resent(batch[i]))
            except redis.ResponseError as exc:
                results[i] = _answer_of_error(exc)

    async def _drop(self, name: str) -> None:
        client = self._clients.pop(name, None)
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                pass

    async def aclose(self) -> None:
        """Close the per-node clients (the cluster client is the caller's)."""
        for name in list(self._clients):
            await self._drop(name)
