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


class Listener:
    """Yields the messages published on ``channels``, forever."""

    def __init__(
        self,
        connect: Callable[[], Any],
        channels: list[str],
        sleep: Callable[[float], None],
        logger: logging.Logger,
        subscribed_again: Callable[[], None] = lambda: None,
    ) -> None:
        self._connect = connect
        self._subscribed_again = subscribed_again
        self.channels = channels
        self._sleep = sleep
        self.logger = logger
        self.subscribed = False
        self.resubscriptions = 0
        self._pubsub: Any = None

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(channel, data) of every message on the channels, resubscribing as needed."""
        delay = RETRY_FIRST
        while True:
            try:
                if self._pubsub is None:
                    self._subscribe()
                    delay = RETRY_FIRST
                message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL)
            except Exception as exc:
                self._lost(exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if message is not None and message.get("type") in ("message", "pmessage"):
                channel = message["channel"]
                yield (channel.decode() if isinstance(channel, bytes) else channel,
                       message["data"])

    def _subscribe(self) -> None:
        client = self._connect()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*self.channels)
        self._pubsub = pubsub
        self.subscribed = True
        if self.resubscriptions:
            self.logger.warning("Redis listener: subscribed again to %s", ", ".join(self.channels))
            self._subscribed_again()

    def _lost(self, exc: Exception, delay: float) -> None:
        if self.subscribed or not self.resubscriptions:
            self.resubscriptions += 1
            # Loud: while this lasts, this worker hears nothing from the others.
            self.logger.error("Redis listener: NOT SUBSCRIBED (%s); resubscribing", exc)
        self.subscribed = False
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:
                pass
