"""The asyncio shells of the worker's readers: the pub/sub listener and the stream reader on
``redis.asyncio``, reconnecting forever. What they decide (subscribed or not, what they log,
the retry delays, what a message holds, where a stream is read on from, which messages were
handled) is :mod:`.reading`'s, shared with the eventlet shells (:mod:`.listener`,
:mod:`.streams`); this module only awaits."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

from .async_publisher import aclose
from .reading import BURST, POLL, ReaderBase, RecoveryCursor, StreamCursor, pubsub_batch
from .sharded import async_subscribe


class AsyncReader(ReaderBase):
    """The reconnect loop: subclasses open a connection (``_open``), read a batch of
    (channel, data) (``_read``); ``subscribed_again`` may be a coroutine function."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Any = None

    async def messages(self) -> AsyncIterator[tuple[str, bytes]]:
        """(channel, data) of every message, forever, reconnecting as often as needed."""
        async for batch in self.batches():
            for item in batch:
                yield item

    async def batches(self) -> AsyncIterator[list[tuple[str, bytes]]]:
        """The messages as read: a list of (channel, data) per read, forever (never empty),
        reconnecting as often as needed."""
        while True:
            try:
                if self._conn is None:
                    self._conn = await self._open()
                    if self._opened():
                        again = self._subscribed_again()
                        if inspect.isawaitable(again):
                            await again
                batch = await self._read()
            except Exception as exc:  # CancelledError is no Exception: it ends the loop
                conn, delay = self._lost(exc)
                client, self._client = self._client, None
                await aclose(conn, client)
                await self._sleep(delay)
                continue
            if batch:
                yield batch

    async def close(self) -> None:
        """Close the connection (a reader still running opens a new one)."""
        conn, client, self._conn, self._client = self._conn, self._client, None, None
        self.subscribed = False
        await aclose(conn, client)

    async def _open(self) -> Any:
        raise NotImplementedError

    async def _read(self) -> list[tuple[str, bytes]]:
        raise NotImplementedError


class AsyncListener(AsyncReader):
    """Yields the messages published on ``channels`` (pub/sub), forever."""

    async def _open(self) -> Any:
        self._client = self._connect()
        # A plain pub/sub, or on a Redis Cluster a sharded one (.sharded).
        return await async_subscribe(self._client, self.channels)

    async def _read(self) -> list[tuple[str, bytes]]:
        conn = self._conn
        batch = pubsub_batch(await conn.get_message(ignore_subscribe_messages=True,
                                                    timeout=POLL))
        # Then what Redis has sent already, delivered as one burst (as listener.Listener).
        while batch and len(batch) < BURST:
            more = pubsub_batch(await conn.get_message(ignore_subscribe_messages=True,
                                                       timeout=0))
            if not more:
                break
            batch += more
        return batch


class AsyncStreamListener(StreamCursor, AsyncReader):
    """Yields the messages added to the streams of ``channels``, forever, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_cursor()

    async def _open(self) -> Any:
        client = self._client = self._connect()
        for key in self.keys:
            if self._starts(key):
                self._start_at(key, await client.xrevrange(key, count=1))
            else:
                self._check_trimmed(key, await client.xrange(key, count=1))
        return client

    async def _read(self) -> list[tuple[str, bytes]]:
        return self._entries(await self._conn.xread(**self._xread_args()))


class AsyncRecoveryReader(RecoveryCursor, AsyncStreamListener):
    """Yields (entry id, data) of every entry added to the recovery stream, forever, in order
    (connection state recovery; the channel given is the recovery channel)."""
