"""What a worker's Redis reader decides, whatever its engine: whether it is subscribed, what it
logs when it loses Redis and when it is back, how long it waits before trying again, what a
pub/sub message or a stream batch holds, and (streams) where to read on from and which
messages it has handled already.

python-socketio's listener stops for good when ``listen()`` returns (python-socketio #1581,
#826, #281). sioctl's reconnects with backoff and subscribes again after any failure: a
restarted Redis, a killed connection (``CLIENT KILL TYPE pubsub``), a silent network (health
checks and TCP keepalive notice it), and says loudly while it is not subscribed. The loop that
does the I/O is the engine's shell: ``listener.Reader`` (eventlet), ``async_readers.AsyncReader``
(asyncio); no I/O here.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .outbox import Backoff, channel_of, stream_key

# How long one wait for a message lasts; the loop also notices a dead connection this often.
POLL = 1.0
# Pub/sub messages read in one go at most: after the first, those Redis has sent already are
# taken without waiting (``get_message(timeout=0)``), and the manager delivers them as one
# burst (.bursts).
BURST = 256
# Streams: entries read per XREAD, how long one XREAD blocks, message ids remembered to drop a
# batch the publisher sent twice.
BLOCK_MS = 1000
COUNT = 512
SEEN = 20_000


class ReaderBase:
    """The state of a reader that (re)connects forever: subscribed or not, how often it lost
    Redis, its retry delays; the shell calls ``_opened`` and ``_lost`` around its I/O."""

    # How the logs name this reader, and what it is not doing while Redis is away.
    name = "Redis listener"
    lost_state = "NOT SUBSCRIBED"
    back_state = "subscribed again"

    def __init__(
        self,
        connect: Callable[[], Any],
        channels: list[str],
        sleep: Callable[[float], Any],
        logger: logging.Logger,
        subscribed_again: Callable[[], Any] = lambda: None,
    ) -> None:
        self._connect = connect
        self.channels = channels
        self._sleep = sleep
        self.logger = logger
        # Called (awaited, under asyncio) once subscribed again after losing Redis.
        self._subscribed_again = subscribed_again
        self.subscribed = False
        self.resubscriptions = 0
        self.backoff = Backoff()
        self._conn: Any = None

    def _opened(self) -> bool:
        """The connection is open and subscribed; True when that ends an outage (the shell
        then calls ``subscribed_again``)."""
        self.subscribed = True
        self.backoff.reset()
        if not self.resubscriptions:
            return False
        self.logger.warning("%s: %s to %s", self.name, self.back_state, ", ".join(self.channels))
        return True

    def _lost(self, exc: Exception) -> tuple[Any, float]:
        """Redis failed the reader: said once per outage (loud: meanwhile this worker hears
        nothing from the others). Returns (the connection to close, if any; how long to wait
        before trying again)."""
        if self.subscribed or not self.resubscriptions:
            self.resubscriptions += 1
            self.logger.error("%s: %s (%s); retrying", self.name, self.lost_state, exc)
        self.subscribed = False
        conn, self._conn = self._conn, None
        return conn, self.backoff.failed()


def pubsub_batch(message: dict[str, Any] | None) -> list[tuple[str, bytes]]:
    """The (channel, data) a pub/sub ``get_message`` answer holds: none for a timeout or a
    (un)subscribe confirmation."""
    if message is None or message.get("type") not in ("message", "pmessage"):
        return []
    channel = message["channel"]
    return [(channel.decode() if isinstance(channel, bytes) else channel, message["data"])]


class StreamCursor:
    """Streams mode, mixed into a reader: the id of the last entry handled per stream (read on
    from there after any reconnection: nothing skipped, nothing twice), the message ids seen
    (a batch the publisher sent twice is dropped) and the trims noticed."""

    name = "Redis stream reader"
    lost_state = "NOT READING"
    back_state = "reading again from where it stopped,"

    if TYPE_CHECKING:  # set by ReaderBase
        channels: list[str]
        logger: logging.Logger

    def _init_cursor(self) -> None:
        self.keys = [stream_key(c) for c in self.channels]
        self.duplicates = 0
        self.trimmed = 0
        self._last: dict[str, str] = {}
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    def _starts(self, key: str) -> bool:
        """Whether ``key`` is read for the first time (from its newest entry, ``_start_at``)
        rather than on from where this reader stopped (``_check_trimmed``)."""
        return key not in self._last

    def _start_at(self, key: str, newest: list[Any]) -> None:
        """First start: only what comes from now on, not the stream's history (``newest``:
        XREVRANGE key COUNT 1)."""
        self._last[key] = _id(newest[0][0]) if newest else "0-0"

    def _check_trimmed(self, key: str, oldest: list[Any]) -> None:
        """Say so when the stream was trimmed past what this reader had read (``oldest``:
        XRANGE key COUNT 1): those entries are gone, how many is not known any more."""
        if oldest and _newer(_id(oldest[0][0]), self._last[key]):
            self.trimmed += 1
            self.logger.error("Redis stream reader: %s was trimmed past the last message read "
                              "during the outage: messages were lost; raise "
                              "--redis-stream-maxlen", key)

    def _xread_args(self) -> dict[str, Any]:
        """The keyword arguments of the next XREAD."""
        return {"streams": self._last, "count": COUNT, "block": BLOCK_MS}

    def _entries(self, answer: Any) -> list[tuple[str, bytes]]:
        """(channel, data) of each entry in an XREAD ``answer``; moves the read position. The
        channel, not the stream's key: a message heard on this worker's own channel is
        checked for misdelivery, and losses are counted per channel, as in pub/sub."""
        batch = []
        for key, entries in answer or []:
            key = _id(key)
            for entry_id, fields in entries:
                self._last[key] = _id(entry_id)
                data = fields.get(b"d", fields.get("d"))
                if data is not None:
                    batch.append((channel_of(key), data))
        return batch

    def first_time(self, message_id: str) -> bool:
        """False for a message id already handled (a batch the publisher sent twice)."""
        if message_id in self._seen:
            self.duplicates += 1
            return False
        self._seen[message_id] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        return True


class RecoveryCursor(StreamCursor):
    """The recovery stream's cursor (connection state recovery, :mod:`.recovery`): batches of
    (entry id, data), since the entry id is the offset each event carries to its clients."""

    name = "Redis recovery stream reader"

    def _entries(self, answer: Any) -> list[tuple[str, bytes]]:
        batch = []
        for key, entries in answer or []:
            key = _id(key)
            for entry_id, fields in entries:
                self._last[key] = _id(entry_id)
                data = fields.get(b"d", fields.get("d"))
                if data is not None:
                    batch.append((self._last[key], data))
        return batch

    def position(self) -> str | None:
        """The id of the last entry read (delivered, or about to be), None before the first
        read."""
        return self._last.get(self.keys[0])


def _id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _newer(a: str, b: str) -> bool:
    """True when stream id ``a`` comes after ``b``."""
    ams, _, aseq = a.partition("-")
    bms, _, bseq = b.partition("-")
    return (int(ams), int(aseq or 0)) > (int(bms), int(bseq or 0))
