"""The eventlet shell of the worker's subscription, kept alive whatever Redis does: the
blocking reconnect loop. What it decides (subscribed or not, what it logs, the retry delays,
what a message holds) is :mod:`.reading`'s, shared with :mod:`.async_readers`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .reading import POLL, ReaderBase, pubsub_batch


class Reader(ReaderBase):
    """The reconnect loop shared by the pub/sub listener and the stream reader: subclasses
    open a connection (``_open``), read a batch of (channel, data) (``_read``) and close."""

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(channel, data) of every message, forever, reconnecting as often as needed."""
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
            yield from batch

    def _open(self) -> Any:
        raise NotImplementedError

    def _read(self) -> list[tuple[str, bytes]]:
        raise NotImplementedError


class Listener(Reader):
    """Yields the messages published on ``channels`` (pub/sub), forever."""

    def _open(self) -> Any:
        pubsub = self._connect().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*self.channels)
        return pubsub

    def _read(self) -> list[tuple[str, bytes]]:
        return pubsub_batch(self._conn.get_message(ignore_subscribe_messages=True,
                                                   timeout=POLL))
