"""What a worker's publisher decides, whatever its engine: the bounded queue of Redis commands,
the batches cut from it, what Redis's answers to a batch mean, the retry delays and the outage
bookkeeping.

python-socketio's RedisManager publishes from the emitting task through a connection pool: with
redis-py 8's pool of 100, a burst of concurrent emits fails with "Too many connections", and
every emit made while Redis is away is lost. sioctl's emits only append to a bounded queue
(:class:`Outbox`); one background task per worker (the engine's shell: ``publisher.Publisher``
under eventlet, ``async_publisher.AsyncPublisher`` under asyncio) drains it into pipelines over
a single connection, keeps what it could not send while Redis is away, and drops (counting and
logging) only when the queue is full.

No I/O and no clock of its own here (``time.monotonic`` is injected): the shells do the Redis
calls and the waiting.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .envelope import joined, merged_channel

# Commands sent per pipeline round trip.
BATCH = 512
# The most characters one merged PUBLISH carries (``merged``); a message this long or longer
# goes alone. What merging saves is per message (a command, a reply, a get_message), so it
# pays for small ones; a few KB apiece are not merged past this, so that a subscriber's
# output buffer in Redis (client-output-buffer-limit pubsub) fills as it did with one PUBLISH
# each (tests/e2e/test_messaging_loss.py sets it to 64 KB).
MERGE_BYTES = 16 * 1024
RETRY_FIRST = 0.1
RETRY_MAX = 2.0
DROP_LOG_EVERY = 5.0
# After an outage, what was queued waits until this worker has subscribed again and then this
# long more, so that the other workers (retrying on the same schedule) are listening too:
# pub/sub delivers only to whoever is subscribed at that moment.
RESUBSCRIBE_WAIT = 5.0
SETTLE = 1.0
# How often the listening check is repeated while waiting for RESUBSCRIBE_WAIT.
LISTENING_POLL = 0.05

STREAM_SUFFIX = ":stream"

# Streams mode, a message for one socket on its owner's stream: added only while the socket's
# owner record (KEYS[2]) still names that owner (ARGV[1]); otherwise nil, and the sender passes
# the message on (the owner died, or the socket moved; see SioctlManagerBase._unheard). XADD
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


def channel_of(key: str) -> str:
    """The channel whose messages stream ``key`` carries (``stream_key``'s inverse)."""
    return key[: -len(STREAM_SUFFIX)] if key.endswith(STREAM_SUFFIX) else key


class Backoff:
    """Retry delays after failures: RETRY_FIRST, doubling up to RETRY_MAX, reset on success."""

    def __init__(self, first: float = RETRY_FIRST, most: float = RETRY_MAX) -> None:
        self.first = first
        self.most = most
        self.delay = first

    def failed(self) -> float:
        """How long to wait before the next attempt (and the one after waits longer)."""
        delay = self.delay
        self.delay = min(self.delay * 2, self.most)
        return delay

    def reset(self) -> None:
        self.delay = self.first


@dataclass
class PublisherStats:
    published: int = 0
    batches: int = 0
    dropped: int = 0
    # Messages that waited out a Redis outage in the queue.
    delayed: int = 0
    outages: int = 0
    connected: bool = False


class Outbox:
    """The engine-free half of a publisher: what is queued, cut into batches, and counted.

    ``stream_maxlen``: with a max length, messages go to Redis Streams (streams.py) instead of
    pub/sub; ``stream_ttl``: how long a worker's stream outlives its last renewal
    (GUARDED_XADD); ``unheard(channel, data)``: called for each message that no subscriber
    received (a PUBLISH answered 0, a guarded XADD refused).
    """

    def __init__(
        self,
        logger: logging.Logger,
        max_queue: int = 100_000,
        stream_maxlen: int | None = None,
        unheard: Callable[[str, Any], None] | None = None,
        stream_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.max_queue = max_queue
        self.stream_maxlen = stream_maxlen
        self.stream_ttl_ms = int(stream_ttl * 1000)
        # The command that publishes: "spublish" on a Redis Cluster (sharded pub/sub, set by
        # the manager: see .sharded).
        self.publish_verb = "publish"
        # Channels whose name starts with this (the workers' own channels, set by the manager;
        # None: none) may carry several messages per PUBLISH (``merged``).
        self.merge_prefix: str | None = None
        self._unheard = unheard
        self._clock = clock
        self.queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self.stats = PublisherStats()
        self.backoff = Backoff()
        self._last_drop_log: float | None = None
        # How many commands at the front of the queue are in the batch being sent now.
        self._in_flight = 0
        # When the current outage began (None: Redis answered the last batch).
        self.outage_started: float | None = None

    def _wake_sender(self) -> None:
        """Tell the sending task there is work (the shell's event)."""

    # --------------------------------------------------------------------------- queueing

    def publish(self, channel: str, data: bytes | str,
                guard: tuple[str, str] | None = None) -> None:
        """Queue a PUBLISH (or, in streams mode, an XADD to the channel's stream, trimmed to
        about ``stream_maxlen`` entries); never blocks and never raises.

        ``guard`` = (key, value), streams mode: add the entry only while ``key`` holds
        ``value``, and report it as unheard otherwise (pub/sub needs no guard: PUBLISH says how
        many received it)."""
        if self.stream_maxlen is None:
            self.command(self.publish_verb, channel, data)
        elif guard is not None:
            self.command("eval", GUARDED_XADD, 2, stream_key(channel), guard[0], guard[1],
                         self.stream_maxlen, data, self.stream_ttl_ms)
        else:
            self.command("xadd", stream_key(channel), "MAXLEN", "~", self.stream_maxlen, "*",
                         "d", data)

    def command(self, *args: Any) -> None:
        """Queue any Redis command (SET, DEL, PEXPIRE...) to go out with the next batch; when
        the queue is full the oldest not being sent is dropped (or this one, when only the
        batch in flight is queued), counted, and said at most every 5 s."""
        if len(self.queue) >= self.max_queue:
            self._count_drop()
            if len(self.queue) <= self._in_flight:
                return
            # The batch in flight goes out whole, and ``sent`` unqueues exactly it.
            del self.queue[self._in_flight]
        self.queue.append(args)
        self._wake_sender()

    def _count_drop(self) -> None:
        self.stats.dropped += 1
        now = self._clock()
        if self._last_drop_log is None or now - self._last_drop_log >= DROP_LOG_EVERY:
            self._last_drop_log = now
            self.logger.error(
                "Redis publish queue full (%d): dropping the oldest messages, %d dropped so "
                "far", self.max_queue, self.stats.dropped)

    # ------------------------------------------------------------------------- sending

    def next_batch(self) -> list[tuple[Any, ...]]:
        """The commands to send in the next pipeline: the first BATCH queued, the consecutive
        PUBLISHes among them to one channel that ``merge_prefix`` names merged (``merged``).
        They stay queued, in flight, until ``sent`` or ``failed``."""
        self._in_flight = min(BATCH, len(self.queue))
        batch = [self.queue[i] for i in range(self._in_flight)]
        if self.merge_prefix is None or self._in_flight < 2:
            return batch
        return merged(batch, self.publish_verb, self.merge_prefix)

    def sent(self, batch: list[tuple[Any, ...]], results: list[Any]) -> None:
        """Redis answered ``batch`` (what ``next_batch`` gave) with ``results``: unqueue what
        was in flight, count it, and report what nobody received."""
        for _ in range(self._in_flight):
            self.queue.popleft()
        self.stats.published += self._in_flight
        self._in_flight = 0
        self.stats.batches += 1
        self.stats.connected = True
        self.backoff.reset()
        if self._unheard is None:
            return
        for args, result in zip(batch, results, strict=True):
            if args[0] == self.publish_verb and result == 0:
                # PUBLISH (SPUBLISH) answers how many subscribers got the message: nobody did.
                self._unheard(args[1], args[2])
            elif args[0] == "eval" and result is None:
                # A guarded XADD refused (see GUARDED_XADD).
                self._unheard(channel_of(args[3]), args[7])

    def failed(self, exc: Exception, connection: Any = None) -> float:
        """A connection or a batch failed: the outage is counted and said once, naming the
        server of ``connection`` (the redis-py connection the batch went over, if any: a
        closed connection's error does not say, and behind Sentinel it tells which master was
        lost); returns how long to wait before trying again (what was queued stays queued)."""
        self._in_flight = 0  # still queued, sent again
        if self.outage_started is None:
            self.outage_started = self._clock()
            self.stats.outages += 1
            self.logger.error("Redis publisher%s: %s; queueing until Redis is back "
                              "(%d message(s) waiting)", server_of(connection), exc,
                              len(self.queue))
        self.stats.connected = False
        return self.backoff.failed()

    def back_after_outage(self) -> bool:
        """Whether the connection just made ends an outage (then the shell waits for the
        listeners, RESUBSCRIBE_WAIT and SETTLE, and calls ``outage_over``)."""
        return self.outage_started is not None

    def outage_over(self) -> None:
        """Say what the queue held when Redis came back (counted as delayed)."""
        started, self.outage_started = self.outage_started, None
        waiting = len(self.queue)
        self.stats.delayed += waiting
        # Counted and said once: subscribers that are not back yet miss what follows.
        self.logger.warning("Redis publisher: Redis is back after %.1fs; sending %d queued "
                            "message(s) (%d delayed by outages so far)",
                            self._clock() - (started or self._clock()), waiting,
                            self.stats.delayed)


def merged(batch: list[tuple[Any, ...]], verb: str, prefix: str,
           most: int = MERGE_BYTES) -> list[tuple[Any, ...]]:
    """``batch`` with each run of consecutive PUBLISHes (``verb``) of encoded messages (str)
    to one channel starting with ``prefix`` sent as one PUBLISH of them all
    (``envelope.joined``, under ``most`` characters) on that channel's merged channel
    (``envelope.merged_channel``): one command, one reply and, at the receiver, one pub/sub
    message for the run instead of one per message. Every other command
    keeps its place, so the order of everything in the batch is kept; a run of one is sent as
    it was. Nothing but sioctl workers listens on those channels (``envelope``)."""
    out: list[tuple[Any, ...]] = []
    channel: str | None = None
    run: list[str] = []
    size = 0
    for args in batch:
        data = args[2] if len(args) == 3 else None
        if args[0] == verb and type(data) is str and len(data) < most \
                and args[1].startswith(prefix):
            if args[1] == channel and size + len(data) < most:
                run.append(data)
                size += len(data) + 1
                continue
            if run:
                out.append(_run_command(verb, channel, run))
            channel, run, size = args[1], [data], len(data) + 2
            continue
        if run:
            out.append(_run_command(verb, channel, run))
            channel, run = None, []
        out.append(args)
    if run:
        out.append(_run_command(verb, channel, run))
    return out


def _run_command(verb: str, channel: Any, run: list[str]) -> tuple[Any, ...]:
    """The PUBLISH of ``run``, messages for worker channel ``channel``: as it was when alone,
    else one PUBLISH of them all on the channel's merged channel."""
    if len(run) == 1:
        return (verb, channel, run[0])
    return (verb, merged_channel(channel), joined(run))


def server_of(connection: Any) -> str:
    """`` (at host:port)`` (or the Unix socket's path) of a redis-py connection, from its
    public ``host``/``port``/``path``; ``""`` when there is none."""
    if connection is None:
        return ""
    path = getattr(connection, "path", None)
    if path:
        return f" (at {path})"
    host, port = getattr(connection, "host", None), getattr(connection, "port", None)
    return f" (at {host}:{port})" if host else ""
