"""The no-loss transport: Redis Streams instead of pub/sub (opt-in, ``--redis-transport streams``).

Pub/sub delivers a message only to whoever is subscribed at that instant: a worker that loses
Redis for a few seconds never hears what was published meanwhile. A stream keeps the messages
(trimmed to about ``--redis-stream-maxlen`` entries); the reader remembers the id of the last
one it handled and, after reconnecting, reads on from there: everything published meanwhile, in
order. Each message also carries a unique id, and the reader drops the ones it has seen, since
the publisher sends a batch again when Redis failed in the middle of it: exactly once.

Costs against pub/sub: every message is stored in Redis memory until trimmed (about maxlen ×
message size per stream), XADD and XREAD do more work than PUBLISH, and readers poll with a
blocking XREAD instead of being pushed to.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterator
from typing import Any

from .publisher import stream_key

RETRY_FIRST = 0.1
RETRY_MAX = 2.0
BLOCK_MS = 1000
COUNT = 512
# Message ids remembered to drop a batch sent twice.
SEEN = 20_000


class StreamListener:
    """Yields the messages added to the streams of ``channels``, forever, in order."""

    def __init__(
        self,
        connect: Callable[[], Any],
        channels: list[str],
        sleep: Callable[[float], None],
        logger: logging.Logger,
        subscribed_again: Callable[[], None] = lambda: None,
    ) -> None:
        self._connect = connect
        self.keys = [stream_key(c) for c in channels]
        self._sleep = sleep
        self.logger = logger
        self._subscribed_again = subscribed_again
        self.subscribed = False
        self.resubscriptions = 0
        self.duplicates = 0
        self.trimmed = 0
        self._client: Any = None
        self._last: dict[str, str] = {}
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(stream, data) of every entry added to the streams, in order, forever."""
        delay = RETRY_FIRST
        while True:
            try:
                if self._client is None:
                    self._start()
                    delay = RETRY_FIRST
                replies = self._client.xread(self._last, count=COUNT, block=BLOCK_MS)
            except Exception as exc:
                self._lost(exc)
                self._sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            for key, entries in replies or []:
                key = key.decode() if isinstance(key, bytes) else key
                for entry_id, fields in entries:
                    entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    self._last[key] = entry_id
                    data = fields.get(b"d", fields.get("d"))
                    if data is not None:
                        yield key, data

    def _start(self) -> None:
        client = self._connect()
        for key in self.keys:
            if key not in self._last:
                # First start: only what comes from now on, not the stream's history.
                newest = client.xrevrange(key, count=1)
                self._last[key] = _id(newest[0][0]) if newest else "0-0"
            else:
                self._count_trimmed(client, key)
        self._client = client
        self.subscribed = True
        if self.resubscriptions:
            self.logger.warning("Redis stream reader: reading again from where it stopped")
            self._subscribed_again()

    def _count_trimmed(self, client: Any, key: str) -> None:
        """Say so when the stream was trimmed past what this reader had read (lost)."""
        oldest = client.xrange(key, count=1)
        if oldest and _newer(_id(oldest[0][0]), self._last[key]):
            # The trimmed entries are gone; how many is not known any more.
            self.trimmed += 1
            self.logger.error("Redis stream reader: %s was trimmed past the last message read "
                              "during the outage: messages were lost; raise "
                              "--redis-stream-maxlen", key)

    def _lost(self, exc: Exception) -> None:
        if self.subscribed or not self.resubscriptions:
            self.resubscriptions += 1
            self.logger.error("Redis stream reader: NOT READING (%s); retrying", exc)
        self.subscribed = False
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

    def first_time(self, message_id: str) -> bool:
        """False for a message id already handled (a batch the publisher sent twice)."""
        if message_id in self._seen:
            self.duplicates += 1
            return False
        self._seen[message_id] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        return True


def _id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _newer(a: str, b: str) -> bool:
    """True when stream id ``a`` comes after ``b``."""
    ams, _, aseq = a.partition("-")
    bms, _, bseq = b.partition("-")
    return (int(ams), int(aseq or 0)) > (int(bms), int(bseq or 0))
