"""The asyncio shell of a worker's publisher: one task that sends the queued Redis commands in
batches over one ``redis.asyncio`` connection. The queue, the batches, what Redis's answers
mean, the retry delays and the outage bookkeeping are :mod:`.outbox`'s, shared with the
eventlet shell (:mod:`.publisher`); this module only awaits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ResponseError

from sioctl.worker.redis_cluster import is_cluster_client

from .cluster_batches import AsyncClusterBatches
from .outbox import LISTENING_POLL, RESUBSCRIBE_WAIT, SETTLE, Outbox


class AsyncPublisher(Outbox):
    """Queues Redis commands (``publish``/``command`` never block, never await) and sends them
    from one task.

    ``connect()`` returns a fresh ``redis.asyncio`` client; ``spawn(coroutine function)``
    starts a task (the server's ``start_background_task``); ``listening()`` says whether this
    worker's reader is subscribed; ``reconnected()`` runs when Redis is back after an outage.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        spawn: Callable[[Callable[[], Awaitable[None]]], Any],
        logger: logging.Logger,
        max_queue: int = 100_000,
        listening: Callable[[], bool] = lambda: True,
        reconnected: Callable[[], None] = lambda: None,
        stream_maxlen: int | None = None,
        unheard: Callable[[str, Any], None] | None = None,
        stream_ttl: float = 60.0,
    ) -> None:
        self._wake = asyncio.Event()
        super().__init__(logger, max_queue, stream_maxlen, unheard, stream_ttl)
        self._connect = connect
        self._spawn = spawn
        self._listening = listening
        self._reconnected = reconnected
        self._client: Any = None
        # On a Redis Cluster: the per-node pipelines of .cluster_batches (None on one Redis).
        self._cluster: AsyncClusterBatches | None = None
        # On one Redis: the connection the batches go over, taken from the client's pool
        # for as long as the client lives.
        self._connection: Any = None
        self.task: Any = None
        # Whether the sending task is waiting on _wake for work.
        self._idle = False

    def _wake_sender(self) -> None:
        # Only a sender waiting for work needs the event (as the eventlet shell's).
        if self._idle:
            self._wake.set()

    def start(self) -> None:
        if self.task is None:
            self.task = self._spawn(self._run)

    async def _run(self) -> None:
        while True:
            if not self.queue:
                self._idle = True
                self._wake.clear()
                if not self.queue:
                    await _wait(self._wake, 1.0)
                self._idle = False
                continue
            try:
                if self._client is None:
                    self._client = self._connect()
                    await self._client.ping()
                    if is_cluster_client(self._client):
                        self._cluster = AsyncClusterBatches(self._client)
                    else:
                        self._connection = await self._client.connection_pool.get_connection()
                    if self.back_after_outage():
                        await self._after_outage()
                batch = self.next_batch()
                if self._cluster is not None:
                    # Raises when part of it failed; the batch stays queued, sent again.
                    self.sent(batch, await self._cluster.send(batch))
                    continue
                # Raises on a connection error; the batch stays queued and is sent again.
                self.sent(batch, await send_batch(self._connection, batch))
            except Exception as exc:  # CancelledError is no Exception: it ends the task
                delay = self.failed(exc, self._connection)
                await self.close()
                await asyncio.sleep(delay)

    async def _after_outage(self) -> None:
        """Back from an outage: wait for the listeners, then say what the queue held."""
        deadline = time.monotonic() + RESUBSCRIBE_WAIT
        while not self._listening() and time.monotonic() < deadline:
            await asyncio.sleep(LISTENING_POLL)
        await asyncio.sleep(SETTLE)
        self._reconnected()
        self.outage_over()

    async def close(self) -> None:
        """Close the connection (the next batch opens a new one)."""
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        connection, self._connection = self._connection, None
        if cluster is not None:
            await cluster.aclose()
        if connection is not None:
            try:
                # Whatever it was in the middle of is not read: it is never used again.
                await connection.disconnect()
            except Exception:
                pass
        await aclose(client)


async def send_batch(connection: Any, batch: list[tuple[Any, ...]]) -> list[Any]:
    """As the eventlet shell's ``send_batch``, over a ``redis.asyncio`` connection."""
    await connection.send_packed_command(connection.pack_commands(batch))
    answers: list[Any] = []
    for _ in batch:
        try:
            answers.append(await connection.read_response())
        except ResponseError as exc:
            answers.append(exc)
    return answers


async def _wait(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` passed, as ``asyncio.wait_for(event.wait())``
    did; that one (Python 3.11) once left ``aclose`` waiting forever for a publisher it had
    cancelled while the publisher waited here (tests/e2e/test_framework_async_redis.py, about
    one run in ten)."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()


async def aclose(*things: Any) -> None:
    """Close redis.asyncio clients and pubsubs, ignoring errors (they are being dropped)."""
    for thing in things:
        if thing is None:
            continue
        try:
            close = getattr(thing, "aclose", None) or thing.close  # aclose: redis >= 5.0.1
            await close()
        except Exception:
            pass


async def stop_tasks(tasks: list[asyncio.Task[Any]], logger: Any, within: float = 5.0) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again every half second: a task whose
    Redis client swallowed one cancellation in a retry (seen with the asyncio cluster client:
    a shutdown that waited forever, about one run in six of test_framework_async_redis) takes
    the next. What is still running after ``within`` seconds is left behind with a warning,
    so that a worker's shutdown never hangs on it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(0.5, max(0.0, deadline - loop.time())))
        if pending and loop.time() >= deadline:
            logger.warning("%d Redis task(s) did not stop when cancelled: %s", len(pending),
                           ", ".join(sorted(task.get_name() for task in pending)))
            return
