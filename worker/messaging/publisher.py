"""One connection per worker that sends everything the worker writes to Redis, in batches.

python-socketio's RedisManager publishes from the emitting green thread through a connection
pool: with redis-py 8's pool of 100, a burst of concurrent emits fails with "Too many
connections", and every emit made while Redis is away is lost. Here emits only append to a
bounded queue; one green thread drains it into pipelines over a single connection, keeps what
it could not send while Redis is away, and drops (counting and logging) only when the queue
is full.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Commands sent per pipeline round trip.
BATCH = 512
RETRY_FIRST = 0.1
RETRY_MAX = 2.0
DROP_LOG_EVERY = 5.0
# After an outage, what was queued waits until this worker has subscribed again and then this
# long more, so that the other workers (retrying on the same schedule) are listening too:
# pub/sub delivers only to whoever is subscribed at that moment.
RESUBSCRIBE_WAIT = 5.0
SETTLE = 1.0


STREAM_SUFFIX = ":stream"

# Streams mode, a message for one socket on its owner's stream: added only while the socket's
# owner record (KEYS[2]) still names that owner (ARGV[1]); otherwise nil, and the sender passes
# the message on (the owner died, or the socket moved; see SioctlRedisManager._unheard). XADD
# has no receiver count, so without this check an entry for a socket that came back on another
# worker lands on a stream nobody reads any more, silently. A stream this creates expires
# (ARGV[4] ms) unless its worker keeps renewing it: the stream of a dead worker whose sockets'
# records are still alive must not come back for good.
GUARDED_XADD = """
if redis.call('get', KEYS[2]) ~= ARGV[1] then return false end
local id = redis.call('xadd', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'd', ARGV[3])
if redis.call('pttl', KEYS[1]) == -1 then redis.call('pexpire', KEYS[1], ARGV[4]) end
return id
"""


def stream_key(channel: str) -> str:
    """The stream that carries ``channel``'s messages in streams mode."""
    return f"{channel}{STREAM_SUFFIX}"


@dataclass
class PublisherStats:
    published: int = 0
    batches: int = 0
    dropped: int = 0
    # Messages that waited out a Redis outage in the queue.
    delayed: int = 0
    outages: int = 0
    connected: bool = False


class Publisher:
    """Queues Redis commands and sends them from one green thread.

    ``connect()`` returns a fresh redis client; ``spawn(fn)`` starts a background task and
    ``sleep(s)``/``make_event()`` come from the server's async mode, so this runs under
    eventlet without importing it.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        spawn: Callable[[Callable[[], None]], Any],
        sleep: Callable[[float], None],
        make_event: Callable[[], Any],
        logger: logging.Logger,
        max_queue: int = 100_000,
        listening: Callable[[], bool] = lambda: True,
        reconnected: Callable[[], None] = lambda: None,
        stream_maxlen: int | None = None,
        unheard: Callable[[str, Any], None] | None = None,
        stream_ttl: float = 60.0,
    ) -> None:
        self._connect = connect
        # Called with (channel, data) for each PUBLISH that no subscriber received.
        self._unheard = unheard
        # With a max length, messages go to Redis Streams (see streams.py) instead of pub/sub.
        self.stream_maxlen = stream_maxlen
        # How long a worker's stream outlives its last renewal (GUARDED_XADD).
        self.stream_ttl_ms = int(stream_ttl * 1000)
        self._listening = listening
        self._reconnected = reconnected
        self._spawn = spawn
        self._sleep = sleep
        self._wake = make_event()
        self.logger = logger
        self.max_queue = max_queue
        self.queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self.stats = PublisherStats()
        self._client: Any = None
        self._last_drop_log = 0.0
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._spawn(self._run)

    def publish(self, channel: str, data: bytes | str,
                guard: tuple[str, str] | None = None) -> None:
        """Queue a PUBLISH (or, in streams mode, an XADD to the channel's stream, trimmed to
        about ``stream_maxlen`` entries); never blocks and never raises.

        ``guard`` = (key, value), streams mode: add the entry only while ``key`` holds
        ``value``, and report it as unheard otherwise (pub/sub needs no guard: PUBLISH says how
        many received it)."""
        if self.stream_maxlen is None:
            self.command("publish", channel, data)
        elif guard is not None:
            self.command("eval", GUARDED_XADD, 2, stream_key(channel), guard[0], guard[1],
                         self.stream_maxlen, data, self.stream_ttl_ms)
        else:
            self.command("xadd", stream_key(channel), "MAXLEN", "~", self.stream_maxlen, "*",
                         "d", data)

    def command(self, *args: Any) -> None:
        """Queue any Redis command (SET, DEL, PEXPIRE...) to go out with the next batch."""
        if len(self.queue) >= self.max_queue:
            self.queue.popleft()
            self.stats.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= DROP_LOG_EVERY:
                self._last_drop_log = now
                self.logger.error(
                    "Redis publish queue full (%d): dropping the oldest messages, %d dropped so "
                    "far", self.max_queue, self.stats.dropped)
        self.queue.append(args)
        self._wake.set()

    def _run(self) -> None:
        delay = RETRY_FIRST
        outage_started: float | None = None
        while True:
            if not self.queue:
                self._wake.clear()
                if not self.queue:
                    self._wake.wait(1.0)
                continue
            try:
                if self._client is None:
                    self._client = self._connect()
                    self._client.ping()
                    if outage_started is not None:
                        self._after_outage(outage_started)
                        outage_started = None
                self._send_batch()
            except Exception as exc:
                if outage_started is None:
                    outage_started = time.monotonic()
                    self.stats.outages += 1
                    self.logger.error("Redis publisher: %s; queueing until Redis is back "
                                      "(%d message(s) waiting)", exc, len(self.queue))
                self.stats.connected = False
                self._drop_client()
                self._sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            self.stats.connected = True
            delay = RETRY_FIRST

    def _after_outage(self, started: float) -> None:
        """Back from an outage: wait for the listeners, then say what the queue held."""
        deadline = time.monotonic() + RESUBSCRIBE_WAIT
        while not self._listening() and time.monotonic() < deadline:
            self._sleep(0.05)
        self._sleep(SETTLE)
        self._reconnected()
        waiting = len(self.queue)
        self.stats.delayed += waiting
        # Counted and said once: subscribers that are not back yet miss what follows.
        self.logger.warning("Redis publisher: Redis is back after %.1fs; sending %d queued "
                            "message(s) (%d delayed by outages so far)",
                            time.monotonic() - started, waiting, self.stats.delayed)

    def _send_batch(self) -> None:
        batch = [self.queue[i] for i in range(min(BATCH, len(self.queue)))]
        pipe = self._client.pipeline(transaction=False)
        for args in batch:
            pipe.execute_command(*args)
        # Raises on a connection error; the batch stays queued and is sent again.
        results = pipe.execute(raise_on_error=False)
        for _ in batch:
            self.queue.popleft()
        self.stats.published += len(batch)
        self.stats.batches += 1
        if self._unheard is not None:
            for args, result in zip(batch, results, strict=True):
                if args[0] == "publish" and result == 0:
                    # PUBLISH answers how many subscribers got the message: nobody did.
                    self._unheard(args[1], args[2])
                elif args[0] == "eval" and result is None:
                    # A guarded XADD refused (see GUARDED_XADD).
                    self._unheard(args[3][: -len(STREAM_SUFFIX)], args[7])

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass
