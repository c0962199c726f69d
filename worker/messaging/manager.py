"""The client manager every worker uses: python-socketio's pub/sub protocol, hardened.

- Publishing goes through :class:`Publisher` (one connection, batches, a bounded queue).
- Listening goes through :class:`Listener` (reconnects and resubscribes, never dies).
- Targeted delivery: each worker also listens on a channel of its own, and records in Redis
  which worker owns each of its sockets. An emit (or a disconnect, a room change, an ack) for
  one socket goes to the owner's channel only; a socket of this worker is not published at all.
  Room emits and broadcasts still go to the shared channel.

Messages are python-socketio's own (``method``, ``host_id``...), so a worker running the stock
RedisManager on the shared channel still understands the broadcasts.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
import socketio

from .latency import LatencyHistogram
from .listener import Listener
from .owners import OwnerCache
from .publisher import Publisher, stream_key
from .queries import Queries, QueryTimeout
from .streams import StreamListener

__all__ = ["QueryTimeout", "SioctlRedisManager"]

# A socket's owner record outlives a dead worker by at most this long.
OWNER_TTL = 60.0
OWNER_REFRESH = OWNER_TTL / 3
# The methods that address one socket ("sid") and can go to its owner alone.
SOCKET_METHODS = {"disconnect", "enter_room", "leave_room"}


class SioctlRedisManager(socketio.PubSubManager):
    """A Redis client manager for sioctl workers (see the module docstring)."""

    name = "sioctl-redis"

    def __init__(
        self,
        url: str,
        channel: str = "socketio",
        logger: logging.Logger | None = None,
        redis_options: dict[str, Any] | None = None,
        max_queue: int = 100_000,
        transport: str = "pubsub",
        stream_maxlen: int = 10_000,
    ) -> None:
        super().__init__(channel=channel, write_only=False, logger=logger)
        if transport not in ("pubsub", "streams"):
            raise ValueError(f"transport: 'pubsub' or 'streams', not {transport!r}")
        self.transport = transport
        self.stream_maxlen = stream_maxlen
        self.redis_url = url
        self.redis_options = dict(redis_options or {})
        self.max_queue = max_queue
        self.own_channel = f"{channel}:w:{self.host_id}"
        # Lookups of other workers' sockets (a plain pooled client: short GETs).
        self.redis = self._new_client()
        self.publisher: Publisher | None = None
        self.listener: Listener | StreamListener | None = None
        self._lookups_failing = False
        self.owners = OwnerCache()
        self.queries = Queries(self)
        self.latency = LatencyHistogram()
        # Per-channel sequence numbers of what this worker publishes, and the gaps it sees in
        # what others publish: pub/sub's losses, counted.
        self._sent_seq: dict[str, int] = {}
        self._last_seq: dict[tuple[str, str], int] = {}
        # Sequence numbers of this worker's channel that arrived forwarded, before their gap.
        self._recovered: dict[tuple[str, str], set[int]] = {}
        # The first sequence number heard per (publisher, channel): gaps are counted after it.
        self._first_seq: dict[tuple[str, str], int] = {}
        self.lost = 0
        self._last_loss_log = 0.0
        # Run (each in a background task) whenever the listener is back on a Redis that may
        # have lost everything: the gateway registry and socket id claims write themselves
        # again, as the owner records do.
        self.when_redis_back: list[Callable[[], None]] = []

    # ----------------------------------------------------------------------- connections

    def _new_client(self) -> redis.Redis:
        options: dict[str, Any] = {"health_check_interval": 10, "socket_connect_timeout": 5}
        if not self.redis_url.startswith("unix:"):
            # A half-open TCP connection would otherwise look like a quiet channel.
            options["socket_keepalive"] = True
        options.update(self.redis_options)
        return redis.Redis.from_url(self.redis_url, **options)

    def initialize(self) -> None:
        logger = self._get_logger()
        self.publisher = Publisher(
            self._new_client,
            lambda fn: self.server.start_background_task(fn),
            self.server.sleep,
            self.server.eio.create_event,
            logger,
            self.max_queue,
            listening=lambda: self.subscribed,
            reconnected=self._claim_owned_sockets,
            stream_maxlen=self.stream_maxlen if self.transport == "streams" else None,
            unheard=self._unheard,
            stream_ttl=OWNER_TTL,
        )
        self.publisher.start()
        reader = StreamListener if self.transport == "streams" else Listener
        self.listener = reader(self._new_client, [self.channel, self.own_channel],
                               self.server.sleep, logger, self._reclaim_now)
        super().initialize()  # starts _thread, which reads _listen()
        self.server.start_background_task(self._refresh_owners)

    @property
    def subscribed(self) -> bool:
        return self.listener is not None and self.listener.subscribed

    def figures(self) -> dict[str, Any]:
        """What ``sioctl status`` and the metrics show about this worker's Redis traffic."""
        stats = self.publisher.stats if self.publisher is not None else None
        return {
            "subscribed": self.subscribed,
            "resubscriptions": self.listener.resubscriptions if self.listener else 0,
            "queued": len(self.publisher.queue) if self.publisher is not None else 0,
            "published": stats.published if stats else 0,
            "batches": stats.batches if stats else 0,
            "dropped": stats.dropped if stats else 0,
            "delayed": stats.delayed if stats else 0,
            "outages": stats.outages if stats else 0,
            "latency": self.latency.figures(),
            "lost": self.lost,
        }

    # ---------------------------------------------------------------------- socket owners

    def _owner_key(self, namespace: str, sid: str) -> str:
        return f"{self.channel}:owner:{namespace}:{sid}"

    def pre_connect(self, eio_sid: str, namespace: str) -> Any:
        sid = super().pre_connect(eio_sid, namespace)
        if sid is not None and self.transport == "streams":
            # Before the client hears CONNECT: from then on no guarded XADD (GUARDED_XADD)
            # can put a message for this socket on the stream of a worker it left.
            self._record_owner_now(namespace, sid)
        return sid

    def connect(self, sid: str, namespace: str) -> Any:
        sid = super().connect(sid, namespace)
        self.owners.forget(namespace, sid)
        if self.publisher is not None and self.transport == "pubsub":
            self.publisher.command("set", self._owner_key(namespace, sid), self.host_id,
                                   "px", int(OWNER_TTL * 1000))
        return sid

    def _record_owner_now(self, namespace: str, sid: str) -> None:
        """Write the owner record of ``sid`` at once (one round trip); while Redis does not
        answer, queue it with the rest instead of holding every connect up."""
        key = self._owner_key(namespace, sid)
        if not self._lookups_failing:
            try:
                self.redis.set(key, self.host_id, px=int(OWNER_TTL * 1000))
                return
            except redis.RedisError as exc:
                self._lookups_failing = True
                self._get_logger().warning("cannot record socket owners (%s); queueing them "
                                           "until Redis answers", exc)
        if self.publisher is not None:
            self.publisher.command("set", key, self.host_id, "px", int(OWNER_TTL * 1000))

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> Any:
        if self.publisher is not None and (
            self.is_connected(sid, namespace)
            # Streams mode recorded a socket refused by its connect handler too.
            or (self.transport == "streams" and self.is_pre_connected(sid, namespace))
        ):
            self.publisher.command("del", self._owner_key(namespace, sid))
        return super().basic_disconnect(sid, namespace, **kwargs)

    def _refresh_owners(self) -> None:
        while True:
            self.server.sleep(OWNER_REFRESH)
            self._claim_owned_sockets()

    def _claim_owned_sockets(self) -> None:
        """(Re)write the owner record of every socket of this worker. SET, not PEXPIRE: a
        restarted Redis has lost them, and emits to those sockets would go to every worker."""
        if self.publisher is None:
            return
        if self.transport == "streams":
            # This worker's own stream goes away with it (within OWNER_TTL).
            self.publisher.command("pexpire", stream_key(self.own_channel),
                                   int(OWNER_TTL * 1000))
        for namespace, rooms in list(self.rooms.items()):
            for sid in list(rooms.get(None, {})):
                self.publisher.command("set", self._owner_key(namespace, sid), self.host_id,
                                       "px", int(OWNER_TTL * 1000))

    def _reclaim_now(self) -> None:
        """Back on a Redis that may have lost everything: write the owner records at once,
        before this worker hears (and answers) anything, so targeted emits find it again."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            for namespace, rooms in list(self.rooms.items()):
                for sid in list(rooms.get(None, {})):
                    pipe.set(self._owner_key(namespace, sid), self.host_id,
                             px=int(OWNER_TTL * 1000))
            pipe.execute()
            self._lookups_failing = False
        except redis.RedisError as exc:
            self._get_logger().warning("cannot record socket owners yet (%s); retrying later",
                                       exc)
        for callback in self.when_redis_back:
            self.server.start_background_task(callback)

    def _owner_of(self, sid: Any, namespace: str) -> str | None:
        """The host id of the worker that owns socket ``sid``, if one does."""
        if not isinstance(sid, str):
            return None
        known, cached = self.owners.get(namespace, sid)
        if known:
            return cached
        try:
            owner = self.redis.get(self._owner_key(namespace, sid))
        except redis.RedisError as exc:
            if not self._lookups_failing:
                self._lookups_failing = True
                self._get_logger().warning("cannot look up socket owners (%s); sending to "
                                           "every worker until Redis answers", exc)
            return None
        if self._lookups_failing:
            self._lookups_failing = False
            self._get_logger().info("socket owner lookups work again")
        found = owner.decode() if isinstance(owner, bytes) else owner
        self.owners.put(namespace, sid, found)
        return found

    # ------------------------------------------------------------------------ publishing

    def _publish(self, data: dict[str, Any]) -> None:
        channel = self._route(data)
        if channel is None:
            return
        guard = None
        owner = channel.removeprefix(f"{self.channel}:w:")
        if owner != channel and data.get("method") != "callback":
            # Streams mode: only while the socket's owner record still names that worker.
            guard = (self._owner_key(data.get("namespace") or "/", _target_of(data)), owner)
        self.publish_raw(channel, data, guard=guard)

    def _route(self, data: dict[str, Any]) -> str | None:
        """The channel for a message: None (nobody else needs it), a worker's own, or the
        shared channel."""
        method = data.get("method")
        namespace = data.get("namespace") or "/"
        if method == "callback":
            return f"{self.channel}:w:{data['host_id']}"
        target = _target_of(data)
        if target is None:
            return self.channel
        if self.is_connected(target, namespace):
            return None  # ours: already handled locally
        owner = self._owner_of(target, namespace)
        if owner is not None:
            return f"{self.channel}:w:{owner}"
        return self.channel  # a room (or a socket nobody claims): everyone may have members

    def _unheard(self, channel: str, raw: Any) -> None:
        """A message for one worker's channel that nobody received (that worker is gone, or
        this worker's owner cache was stale): send it to the shared channel instead, where the
        socket's worker, if any, takes it."""
        if not channel.startswith(f"{self.channel}:w:"):
            return
        try:
            data = self.json.loads(raw)
        except ValueError:
            return
        target = _target_of(data) if isinstance(data, dict) else None
        if target is not None:
            self.owners.forget(data.get("namespace") or "/", target)
            # A live worker whose subscription had dropped for a moment gets it this way too;
            # "orig" tells it not to count as lost what it will see a gap for on its channel.
            seq = data.get("seq")
            self._forward(data, [channel, seq] if isinstance(seq, int) else None)

    def _forward(self, data: dict[str, Any], orig: list[Any] | None = None) -> None:
        """Send another worker's targeted message on to the shared channel, as that worker's
        (its host_id stays, so its callbacks still come back to it)."""
        forwarded = {key: value for key, value in data.items() if key not in ("seq", "mid")}
        forwarded["forwarded"] = True
        if orig is not None:
            forwarded["orig"] = orig
        self.publish_raw(self.channel, forwarded, sequenced=False)

    def publish_raw(self, channel: str, data: dict[str, Any], sequenced: bool = True,
                    guard: tuple[str, str] | None = None) -> None:
        """Queue ``data`` for ``channel`` as it is (no routing); ``guard``: see
        ``Publisher.publish``."""
        if self.publisher is not None:
            # The send time, for the delivery latency the receivers measure; the sequence
            # number, for the losses they count.
            data = {**data, "ts": data.get("ts") or time.time()}
            # A callback's host_id names its receiver, not its sender, and a forwarded message
            # keeps its sender's host_id: no sequence for them (they would look like gaps).
            if sequenced and data.get("method") != "callback":
                data["seq"] = self._sent_seq[channel] = self._sent_seq.get(channel, 0) + 1
            if self.transport == "streams":
                # Readers drop a message id seen before: a batch may be sent twice.
                data["mid"] = uuid.uuid4().hex
            self.publisher.publish(channel, self.json.dumps(data), guard)

    def _listen(self) -> Any:
        assert self.listener is not None
        for channel, raw in self.listener.messages():
            try:
                data = self.json.loads(raw)
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            self._count_gap(channel, data)
            sent = data.get("ts")
            if isinstance(sent, (int, float)) and data.get("host_id") != self.host_id:
                self.latency.observe(time.time() - sent)
            mid = data.get("mid")
            if isinstance(self.listener, StreamListener) and isinstance(mid, str):
                if not self.listener.first_time(mid):
                    continue
            if self.queries.handle(data):
                continue
            if channel == self.own_channel and self._not_here(data):
                # Sent here on a stale owner record (the socket now lives on another worker,
                # e.g. an io.generate_id id that reconnected elsewhere): pass it on.
                self._forward(data)
                continue
            yield data

    def _not_here(self, data: dict[str, Any]) -> bool:
        """Whether ``data`` targets one socket that is not connected to this worker."""
        target = _target_of(data)
        if target is None or data.get("forwarded"):
            return False
        namespace = data.get("namespace") or "/"
        return not (self.is_connected(target, namespace)
                    or self.is_pre_connected(target, namespace))

    def _count_recovered(self, data: dict[str, Any]) -> None:
        """A message meant for this worker's channel that came forwarded (see ``_unheard``):
        it is not lost, whether or not its gap on that channel has shown yet."""
        orig, host = data.get("orig"), data.get("host_id")
        if not (isinstance(orig, list) and len(orig) == 2 and orig[0] == self.own_channel
                and isinstance(orig[1], int) and isinstance(host, str)):
            return
        key = (host, self.own_channel)
        last = self._last_seq.get(key)
        if last is not None and self._first_seq.get(key, last) < orig[1] <= last:
            self.lost -= 1  # its gap was counted already
        else:
            self._recovered.setdefault(key, set()).add(orig[1])

    def _count_gap(self, channel: str, data: dict[str, Any]) -> None:
        """Count the messages a publisher sent on ``channel`` that never arrived here."""
        if data.get("forwarded"):
            self._count_recovered(data)
        seq, host = data.get("seq"), data.get("host_id")
        if not isinstance(seq, int) or not isinstance(host, str) or host == self.host_id:
            # This worker's own broadcasts come back to it on the shared channel, but its
            # clients had them already (delivered here first): a gap in them is nobody's loss.
            # Counting it too made `lost` twice what the clients missed (issue 13, item 10).
            return
        key = (host, channel)
        last = self._last_seq.get(key)
        recovered = self._recovered.get(key)
        arrived_forwarded = 0
        if recovered:
            arrived_forwarded = sum(1 for s in recovered if last is not None and last < s < seq)
            recovered.difference_update([s for s in recovered if s < seq])
            if not recovered:
                del self._recovered[key]
        if last is not None and seq > last + 1 + arrived_forwarded:
            missing = seq - last - 1 - arrived_forwarded
            self.lost += missing
            now = time.monotonic()
            if now - self._last_loss_log >= 5.0:
                self._last_loss_log = now
                self._get_logger().error(
                    "lost %d message(s) from worker %s on %s (not subscribed when they were "
                    "published; --redis-transport streams keeps them); %d lost so far",
                    missing, host[:8], channel, self.lost)
        if last is None:
            self._first_seq[key] = seq
        if last is None or seq > last:
            self._last_seq[key] = seq

    # ------------------------------------------------------------------- global queries

    def fetch_sockets(
        self, room: str | None = None, namespace: str = "/", timeout: float = 2.0
    ) -> list[dict[str, Any]]:
        """Every socket in ``room`` (all when None) on every worker and node, each as
        ``{"sid", "rooms"}``. Raises QueryTimeout when a worker does not answer in time."""
        answers = self.queries.ask("fetch", room, namespace, timeout)
        return [socket for answer in answers for socket in answer.get("sockets", [])]

    def rooms_of(self, sid: str, namespace: str = "/", timeout: float = 2.0) -> list[str]:
        """The rooms of socket ``sid``, wherever it is ([] when it is nowhere)."""
        for socket in self.fetch_sockets(sid, namespace, timeout):
            if socket["sid"] == sid:
                return list(socket["rooms"])
        return []

    def sockets_join(self, target: str, room: str | None = None, namespace: str = "/",
                     timeout: float = 2.0) -> int:
        """Make every socket in ``room`` (all when None) join ``target``; returns how many."""
        answers = self.queries.ask("join", room, namespace, timeout, target=target)
        return sum(int(answer.get("count", 0)) for answer in answers)

    def sockets_leave(self, target: str, room: str | None = None, namespace: str = "/",
                      timeout: float = 2.0) -> int:
        """Make every socket in ``room`` (all when None) leave ``target``; returns how many."""
        answers = self.queries.ask("leave", room, namespace, timeout, target=target)
        return sum(int(answer.get("count", 0)) for answer in answers)

    def disconnect_sockets(self, room: str | None = None, namespace: str = "/",
                           timeout: float = 2.0) -> int:
        """Disconnect every socket in ``room`` (all when None); returns how many."""
        answers = self.queries.ask("disconnect", room, namespace, timeout)
        return sum(int(answer.get("count", 0)) for answer in answers)


def _target_of(data: dict[str, Any]) -> Any:
    """The one socket (or room) a message addresses: an emit's room, a socket method's sid."""
    method = data.get("method")
    if method == "emit":
        return data.get("room")
    if method in SOCKET_METHODS:
        return data.get("sid")
    return None
