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

This is the eventlet shell; the bookkeeping (read positions, ids seen, trims) is
``reading.StreamCursor``, shared with ``async_readers.AsyncStreamListener``.
"""

from __future__ import annotations

from typing import Any

from .listener import Reader
from .reading import RecoveryCursor, StreamCursor


class StreamListener(StreamCursor, Reader):
    """Yields the messages added to the streams of ``channels``, forever, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_cursor()

    def _open(self) -> Any:
        client = self._connect()
        for key in self.keys:
            if self._starts(key):
                self._start_at(key, client.xrevrange(key, count=1))
            else:
                self._check_trimmed(key, client.xrange(key, count=1))
        return client

    def _read(self) -> list[tuple[str, bytes]]:
        return self._entries(self._conn.xread(**self._xread_args()))


class RecoveryReader(RecoveryCursor, StreamListener):
    """Yields (entry id, data) of every entry added to the recovery stream, forever, in order
    (connection state recovery; the channel given is the recovery channel)."""
