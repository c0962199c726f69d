"""The eventlet shell of a worker's publisher: one green thread that sends the queued Redis
commands in batches over one connection (the queue, the batches, the retry delays and the
outage bookkeeping are :mod:`.outbox`'s, shared with the asyncio shell in
:mod:`.async_publisher`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from .outbox import (  # noqa: F401  (GUARDED_XADD, stream_key: imported from here too)
    GUARDED_XADD,
    LISTENING_POLL,
    RESUBSCRIBE_WAIT,
    SETTLE,
    Outbox,
    PublisherStats,
    stream_key,
)
from .pushes import READ_SIZE, address, read_failed
from .replies import BatchAnswers, pack

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
        # The client (its pool makes the connection) and the one connection batches go on.
        self._client: Any = None
        self._conn: Any = None
        self._started = False

    def _wake_sender(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._spawn(self._run)

    def _run(self) -> None:
        while True:
            if not self.queue:
                self._wake.clear()
                if not self.queue:
                    self._wake.wait(1.0)
                continue
            try:
                if self._conn is None:
                    self._client = self._connect()
                    self._conn = self._client.connection_pool.make_connection()
                    self._conn.connect()  # HELLO: Redis answers
                    if self.back_after_outage():
                        self._after_outage()
                batch = self.next_batch()
                # Raises on a connection error; the batch stays queued and is sent again.
                self.sent(batch, self._exchange(batch))
            except Exception as exc:
                delay = self.failed(exc)
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

    def _exchange(self, batch: list[tuple[Any, ...]]) -> list[Any]:
        """Send ``batch`` in one write and read its answers (``replies``: one buffer out,
        every answer parsed from what the reads return)."""
        conn = self._conn
        conn.send_packed_command([pack(batch)], check_health=False)
        answers = BatchAnswers(len(batch), address(conn))
        try:
            while not answers.feed(conn._sock.recv(READ_SIZE)):
                pass
        except OSError as exc:
            raise read_failed(conn, exc) from exc
        return answers.values

    def _drop_client(self) -> None:
        conn, client, self._conn, self._client = self._conn, self._client, None, None
        for close in (conn and conn.disconnect, client and client.close):
            if close is not None:
                try:
                    close()
                except Exception:
                    pass
