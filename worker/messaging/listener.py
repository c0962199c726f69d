"""The worker's subscription, kept alive whatever Redis does.

python-socketio's listener stops for good when ``listen()`` returns (python-socketio #1581,
#826, #281). This one reconnects with backoff and subscribes again after any failure: a
restarted Redis, a killed connection (``CLIENT KILL TYPE pubsub``), a silent network (health
checks and TCP keepalive notice it), and says loudly while it is not subscribed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

RETRY_FIRST = 0.1
RETRY_MAX = 2.0
# How long one wait for a message lasts; the loop also notices a dead connection this often.
POLL = 1.0


class Reader:
    """The reconnect loop shared by the pub/sub listener and the stream reader: subclasses
    open a connection (``_open``), read a batch of (channel, data) (``_read``) and close."""

    # How the logs name this reader, and what it is not doing while Redis is away.
    name = "Redis listener"
    lost_state = "NOT SUBSCRIBED"
    back_state = "subscribed again"

    def __init__(
        self,
        connect: Callable[[], Any],
        channels: list[str],
        sleep: Callable[[float], None],
        logger: logging.Logger,
        subscribed_again: Callable[[], None] = lambda: None,
    ) -> None:
        self._connect = connect
        self.channels = channels
        self._sleep = sleep
        self.logger = logger
        self._subscribed_again = subscribed_again
        self.subscribed = False
        self.resubscriptions = 0
        self._conn: Any = None

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(channel, data) of every message, forever, reconnecting as often as needed."""
        delay = RETRY_FIRST
        while True:
            try:
                if self._conn is None:
                    self._conn = self._open()
                    self.subscribed = True
                    delay = RETRY_FIRST
                    if self.resubscriptions:
                        self.logger.warning("%s: %s to %s", self.name, self.back_state,
                                            ", ".join(self.channels))
                        self._subscribed_again()
                batch = self._read()
            except Exception as exc:
                self._lost(exc)
                self._sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            yield from batch

    def _open(self) -> Any:
        raise NotImplementedError

    def _read(self) -> list[tuple[str, bytes]]:
        raise NotImplementedError

    def _lost(self, exc: Exception) -> None:
        if self.subscribed or not self.resubscriptions:
            self.resubscriptions += 1
            # Loud: while this lasts, this worker hears nothing from the others.
            self.logger.error("%s: %s (%s); retrying", self.name, self.lost_state, exc)
        self.subscribed = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


class Listener(Reader):
    """Yields the messages published on ``channels`` (pub/sub), forever."""

    def _open(self) -> Any:
        pubsub = self._connect().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*self.channels)
        return pubsub

    def _read(self) -> list[tuple[str, bytes]]:
        message = self._conn.get_message(ignore_subscribe_messages=True, timeout=POLL)
        if message is None or message.get("type") not in ("message", "pmessage"):
            return []
        channel = message["channel"]
        return [(channel.decode() if isinstance(channel, bytes) else channel, message["data"])]
