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
from typing import Any

from .listener import Reader
from .publisher import stream_key

BLOCK_MS = 1000
COUNT = 512
# Message ids remembered to drop a batch sent twice.
SEEN = 20_000


class StreamListener(Reader):
    """Yields the messages added to the streams of ``channels``, forever, in order."""

    name = "Redis stream reader"
    lost_state = "NOT READING"
    back_state = "reading again from where it stopped,"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keys = [stream_key(c) for c in self.channels]
        self.duplicates = 0
        self.trimmed = 0
        self._last: dict[str, str] = {}
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    def _open(self) -> Any:
        client = self._connect()
        for key in self.keys:
            if key not in self._last:
                # First start: only what comes from now on, not the stream's history.
                newest = client.xrevrange(key, count=1)
                self._last[key] = _id(newest[0][0]) if newest else "0-0"
            else:
                self._count_trimmed(client, key)
        return client

    def _read(self) -> list[tuple[str, bytes]]:
        batch = []
        for key, entries in self._conn.xread(self._last, count=COUNT, block=BLOCK_MS) or []:
            key = _id(key)
            for entry_id, fields in entries:
                # Read on from here after any reconnection: nothing skipped, nothing twice.
                self._last[key] = _id(entry_id)
                data = fields.get(b"d", fields.get("d"))
                if data is not None:
                    batch.append((key, data))
        return batch

    def _count_trimmed(self, client: Any, key: str) -> None:
        """Say so when the stream was trimmed past what this reader had read (lost)."""
        oldest = client.xrange(key, count=1)
        if oldest and _newer(_id(oldest[0][0]), self._last[key]):
            # The trimmed entries are gone; how many is not known any more.
            self.trimmed += 1
            self.logger.error("Redis stream reader: %s was trimmed past the last message read "
                              "during the outage: messages were lost; raise "
                              "--redis-stream-maxlen", key)

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
