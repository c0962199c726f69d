"""The eventlet shell of a worker's publisher: one green thread that sends the queued Redis
commands in batches over one connection (the queue, the batches, the retry delays and the
outage bookkeeping are :mod:`.outbox`'s, shared with the asyncio shell in
:mod:`.async_publisher`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import ResponseError

from sioctl.worker.redis_cluster import is_cluster_client

from .cluster_batches import ClusterBatches
from .outbox import (  # noqa: F401  (GUARDED_XADD, stream_key: imported from here too)
    GUARDED_XADD,
    LISTENING_POLL,
    RESUBSCRIBE_WAIT,
    SETTLE,
    Outbox,
    PublisherStats,
    stream_key,
)

__all__ = ["GUARDED_XADD", "Publisher", "PublisherStats", "stream_key"]


class Publisher(Outbox):
    """Queues Redis commands and sends them from one green thread.

    ``connect()`` returns a fresh redis client; ``spawn(fn)`` starts a background task and
    ``sleep(s)``/``make_event()`` come from the server's async mode, so this runs under
    eventlet without importing it. ``listening()`` says whether this worker's listener is
    subscribed; ``reconnected()`` runs when Redis is back after an outage.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        spawn: Callable[[Callable[[], None]], Any],
        sleep: Callable[[float], None],
        make_event: Callable[[], Any],
        logger: logging.Logger,
        max_queue: int = 100_000,
        listening: Callable[[], bool] = lambda: True,
        reconnected: Callable[[], None] = lambda: None,
        stream_maxlen: int | None = None,
        unheard: Callable[[str, Any], None] | None = None,
        stream_ttl: float = 60.0,
    ) -> None:
        self._wake = make_event()
        super().__init__(logger, max_queue, stream_maxlen, unheard, stream_ttl)
        self._connect = connect
        self._listening = listening
        self._reconnected = reconnected
        self._spawn = spawn
        self._sleep = sleep
        self._client: Any = None
        # On a Redis Cluster: the per-node pipelines of .cluster_batches (None on one Redis).
        self._cluster: ClusterBatches | None = None
        # On one Redis: the connection the batches go over, taken from the client's pool
        # for as long as the client lives.
        self._connection: Any = None
        self._started = False
        # Whether the sending thread is (about to be) waiting on _wake for work.
        self._idle = False

    def _wake_sender(self) -> None:
        # Only a sender waiting for work needs the event: set per queued command it was
        # ~1 % of a sending worker's CPU under targeted emits (a lock and a notify each).
        if self._idle:
            self._wake.set()

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._spawn(self._run)

    def _run(self) -> None:
        while True:
            if not self.queue:
                # _idle first, then the queue checked again: a command queued in between
                # sets the event (emits may come from other threads in threading mode).
                self._idle = True
                self._wake.clear()
                if not self.queue:
                    self._wake.wait(1.0)
                self._idle = False
                continue
            try:
                if self._client is None:
                    self._client = self._connect()
                    self._client.ping()
                    if is_cluster_client(self._client):
                        self._cluster = ClusterBatches(self._client)
                    else:
                        self._connection = self._client.connection_pool.get_connection()
                    if self.back_after_outage():
                        self._after_outage()
                batch = self.next_batch()
                if self._cluster is not None:
                    # Raises when part of it failed; the batch stays queued, sent again.
                    self.sent(batch, self._cluster.send(batch))
                    continue
                # Raises on a connection error; the batch stays queued and is sent again.
                self.sent(batch, send_batch(self._connection, batch))
            except Exception as exc:
                delay = self.failed(exc, self._connection)
                self._drop_client()
                self._sleep(delay)

    def _after_outage(self) -> None:
        """Back from an outage: wait for the listeners, then say what the queue held."""
        deadline = time.monotonic() + RESUBSCRIBE_WAIT
        while not self._listening() and time.monotonic() < deadline:
            self._sleep(LISTENING_POLL)
        self._sleep(SETTLE)
        self._reconnected()
        self.outage_over()

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        connection, self._connection = self._connection, None
        self._cluster = None
        if connection is not None:
            try:
                # Whatever it was in the middle of is not read: it is never used again.
                connection.disconnect()
            except Exception:
                pass
        if client is not None:
            try:
                client.close()
            except Exception:
                pass


def send_batch(connection: Any, batch: list[tuple[Any, ...]]) -> list[Any]:
    """Send ``batch`` over ``connection`` (a redis-py ``Connection``) in one write and read
    its answers, in order: what ``Pipeline.execute(raise_on_error=False)`` returns, without
    the pipeline's per-batch objects, retry wrapper and response callbacks (the outbox reads
    only PUBLISH's count and EVAL's nil). A reply error (WRONGTYPE...) is an answer; a
    connection error raises, and the caller drops the connection."""
    connection.send_packed_command(connection.pack_commands(batch))
    answers: list[Any] = []
    for _ in batch:
        try:
            answers.append(connection.read_response())
        except ResponseError as exc:
            answers.append(exc)
    return answers
