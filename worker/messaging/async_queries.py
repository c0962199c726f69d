"""Questions to every worker, asyncio shell: the asking and answering side of
:class:`.async_manager.AsyncSioctlRedisManager` (``fetch_sockets``, ``rooms_of``,
``sockets_join``, ``sockets_leave``, ``disconnect_sockets``).

What :mod:`.queries` is for eventlet, awaiting instead: the ``PUBSUB NUMSUB`` read, the wait for
the answers (an ``asyncio.Event`` per open question) and a disconnect on this worker. Who was
asked, which answers count and whether the result is whole live in :mod:`.tally`, shared by
both shells; the messages are the same, so eventlet and asyncio workers answer each other.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from . import tally
from .queries import answer_here
from .sharded import async_numsub

if TYPE_CHECKING:
    from .async_manager import AsyncSioctlRedisManager


class AsyncQueries:
    """The asking and the answering side of one asyncio worker's manager."""

    def __init__(self, manager: AsyncSioctlRedisManager) -> None:
        self.manager = manager
        self.tallies = tally.Tallies(manager.host_id)
        # The event each open question's asker waits on, by request id.
        self.waiting: dict[str, asyncio.Event] = {}

    async def ask(self, kind: str, room: str | None, namespace: str, timeout: float,
                  **extra: Any) -> list[dict[str, Any]]:
        """Every worker's answer to ``kind`` for the sockets in ``room`` (all when None);
        raises QueryTimeout when some do not answer within ``timeout`` seconds."""
        m = self.manager
        request_id = uuid.uuid4().hex
        answers = self.tallies.start(request_id, await self._workers())
        done = self.waiting[request_id] = asyncio.Event()
        request = tally.question(kind, room, namespace, request_id, m.host_id, m.own_channel,
                                 **extra)
        try:
            await self._answer(request)  # this worker answers itself without Redis
            if not answers.complete:
                m.publish_raw(m.channel, request)
                try:
                    await asyncio.wait_for(done.wait(), timeout)
                except asyncio.TimeoutError:
                    pass  # result() says how many answered
        finally:
            self.tallies.stop(request_id)
            self.waiting.pop(request_id, None)
        return answers.result(timeout)

    async def _workers(self) -> int:
        """How many workers listen on the shared channel now (at least this one)."""
        try:
            return tally.expected_workers(
                await async_numsub(self.manager.redis, self.manager.channel))
        except Exception:
            return 1

    async def handle(self, message: dict[str, Any]) -> bool:
        """Take a query or a reply off the channel (answering a query here); False for
        anything else."""
        heard = self.tallies.heard(message)
        if heard.answer:
            await self._answer(message)
        elif heard.completed is not None:
            done = self.waiting.get(str(message.get("request_id")))
            if done is not None:
                done.set()
        return heard.ours

    async def _answer(self, request: dict[str, Any]) -> None:
        m = self.manager
        local = answer_here(m, request)
        if local is None:
            return
        answer, namespace, to_disconnect = local
        for sid in to_disconnect:
            await m.server.disconnect(sid, namespace=namespace, ignore_queue=True)
        channel = tally.reply_channel(request, m.host_id)
        if channel is None:
            await self.handle(answer)
        else:
            m.publish_raw(channel, answer)
