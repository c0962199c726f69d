"""The eventlet shell of the worker's subscription, kept alive whatever Redis does: the
blocking reconnect loop. What it decides (subscribed or not, what it logs, the retry delays,
what a message holds) is :mod:`.reading`'s, shared with :mod:`.async_readers`."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from .pubsub_read import whole_message
from .reading import BURST, POLL, ReaderBase, pubsub_batch
from .sharded import ShardedSubscription, subscribe


class Reader(ReaderBase):
    """The reconnect loop shared by the pub/sub listener and the stream reader: subclasses
    open a connection (``_open``), read a batch of (channel, data) (``_read``) and close."""

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(channel, data) of every message, forever, reconnecting as often as needed."""
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[tuple[str, bytes]]]:
        """The messages as read: a list of (channel, data) per read, forever (never empty),
        reconnecting as often as needed."""
        while True:
            try:
                if self._conn is None:
                    self._conn = self._open()
                    if self._opened():
                        self._subscribed_again()
                batch = self._read()
            except Exception as exc:
                conn, delay = self._lost(exc)
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
                self._sleep(delay)
                continue
            if batch:
                yield batch

    def _open(self) -> Any:
        raise NotImplementedError

    def _read(self) -> list[tuple[str, bytes]]:
        raise NotImplementedError


class Listener(Reader):
    """Yields the messages published on ``channels`` (pub/sub), forever."""

    def _open(self) -> Any:
        # A plain pub/sub, or on a Redis Cluster a sharded one (.sharded). The client is kept
        # while its subscription is used: redis-py closes the pool of a client it collects,
        # and with it the subscription's connection ("I/O operation on closed file").
        self._client = self._connect()
        return subscribe(self._client, self.channels)

    def _read(self) -> list[tuple[str, bytes]]:
        conn = self._conn
        # A plain PubSub's reply is read whole once it has begun (.pubsub_read); a sharded
        # subscription reads its pubsubs that way itself.
        read = conn.get_message if isinstance(conn, ShardedSubscription) else \
            functools.partial(whole_message, conn)
        batch = pubsub_batch(read(ignore_subscribe_messages=True, timeout=POLL))
        # Then what Redis has sent already (redis-py's buffer, or one non-blocking read):
        # delivered as one burst (.bursts). A confirmation or a PONG ends the burst early.
        while batch and len(batch) < BURST:
            more = pubsub_batch(read(ignore_subscribe_messages=True, timeout=0))
            if not more:
                break
            batch += more
        return batch
