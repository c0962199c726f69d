"""The gateway's registry in Redis for the asyncio engine: the flows of :mod:`.registry`
(every decision, the same keys and scripts) awaited on a ``redis.asyncio`` client, so eventlet
and asyncio workers share one registry.

The in-process :class:`~.memory_registry.MemoryRegistry` needs no async variant: it never waits,
and the asyncio gateway (``async_gateway.py``) calls either kind, awaiting what is awaitable.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import redis
import redis.asyncio

from sioctl.worker.redis_clients import queue_on

from .registry import DEFAULT_TTL, Flow, Rebind, RedisFlows
from .registry_presence import Departed, WorkerId

__all__ = ["AsyncRedisRegistry"]

_T = TypeVar("_T")


class AsyncRedisRegistry(RedisFlows):
    """:class:`~.registry.Registry`'s operations as coroutines, on ``redis.asyncio``; each
    raises RegistryError when Redis fails."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str, ttl: float = DEFAULT_TTL,
                 worker: WorkerId | None = None) -> None:
        super().__init__(client, prefix, ttl, worker)

    async def _run(self, operation: str, flow: Flow[_T]) -> _T:
        """Send each pipeline ``flow`` yields, awaiting the replies; its answer."""
        try:
            replies: Any = None
            while True:
                try:
                    batch = flow.send(replies)
                except StopIteration as done:
                    return done.value
                pipe = self._client.pipeline(transaction=batch.transaction)
                for command in batch.commands:
                    queue_on(pipe, command)
                replies = await pipe.execute()
        except redis.RedisError as exc:
            raise self._failed(operation, exc) from None

    async def register(self, sid: str, user_id: str, app: str | None = None) -> None:
        await self._run("register", self._register(sid, user_id, app))

    async def set_app(self, sid: str, app: str) -> bool:
        return await self._run("set_app", self._set_app(sid, app))

    async def resolve(self, target: str) -> str | None:
        return await self._run("resolve", self._resolve(target))

    async def user_of(self, sid: str) -> str | None:
        return await self._run("user_of", self._field(sid, "user"))

    async def app_of(self, sid: str) -> str | None:
        return await self._run("app_of", self._field(sid, "app"))

    async def rebind(self, user_id: str, sid: str, take_over: bool = False) -> Rebind:
        return await self._run("rebind", self._rebind(user_id, sid, take_over))

    async def unregister(self, sid: str) -> bool:
        return await self._run("unregister", self._unregister(sid))

    async def refresh(self, sids: Iterable[str]) -> list[str]:
        return await self._run("refresh", self._refresh(sids))

    async def claim_nonce(self, app: str, nonce: str, ttl_seconds: float) -> bool:
        return await self._run("claim_nonce", self._claim_nonce(app, nonce, ttl_seconds))

    async def claim_signature(self, app: str, sign: str, owner: str, ttl_seconds: float) -> bool:
        return await self._run("claim_signature",
                               self._claim_signature(app, sign, owner, ttl_seconds))

    async def add_peers(self, user_id: str, peer: str) -> None:
        await self._run("add_peers", self._add_peers(user_id, peer))

    async def peers_of(self, user_id: str) -> list[str]:
        return await self._run("peers_of", self._peers_of(user_id))

    async def dead_workers(self) -> list[str]:
        return await self._run("dead_workers", self._dead_workers())

    async def take_worker(self, worker: str) -> list[Departed]:
        return await self._run("take_worker", self._take_worker(worker))
