"""The eventlet shell of the worker's subscription, kept alive whatever Redis does: the
blocking reconnect loop. What it decides (subscribed or not, what it logs, the retry delays,
what a message holds) is :mod:`.reading`'s, shared with :mod:`.async_readers`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .pushes import READ_SIZE, Subscription, read_failed
from .reading import POLL, ReaderBase


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
    """Yields the messages published on ``channels`` (pub/sub), forever: redis-py opens the
    connection and subscribes, and the pushes are read off its socket many at a time
    (:mod:`.pushes`)."""

    def _open(self) -> Subscription:
        client = self._connect()
        subscription = Subscription(client, client.connection_pool.make_connection())
        try:
            subscription.conn.connect()
            subscription.conn.send_command("SUBSCRIBE", *self.channels)
            # A green socket: the wait yields to the hub; a timeout lets the loop check
            # that the connection is alive.
            subscription.conn._sock.settimeout(POLL)
        except BaseException:
            subscription.close()
            raise
        return subscription

    def _read(self) -> list[tuple[str, bytes]]:
        subscription: Subscription = self._conn
        try:
            data = subscription.conn._sock.recv(READ_SIZE)
        except TimeoutError:
            if subscription.liveness.quiet():
                subscription.conn._sock.sendall(subscription.ping_command())
            return []
        except OSError as exc:
            raise read_failed(subscription.conn, exc) from exc
        return subscription.received(data)

