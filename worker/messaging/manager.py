"""The client manager every worker uses: python-socketio's pub/sub protocol, hardened.

- Publishing goes through :class:`Publisher` (one connection, batches, a bounded queue).
- Listening goes through :class:`Listener` (reconnects and resubscribes, never dies).
- Targeted delivery: each worker also listens on a channel of its own, and records in Redis
  which worker owns each of its sockets. An emit (or a disconnect, a room change, an ack) for
  one socket goes to the owner's channel only; a socket of this worker is not published at all.
  Room emits and broadcasts still go to the shared channel.

Messages are python-socketio's own (``method``, ``host_id``...), so a worker running the stock
RedisManager on the shared channel still understands the broadcasts.

This class is the eventlet shell: the Redis calls and the background tasks. What it sends
and reads (:mod:`.envelope`), the losses it counts (:mod:`.loss`), the owner cache
(:mod:`.owners`) and where a message goes (:mod:`.routing`) are engine-free, for an asyncio
manager to share.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
import socketio

from . import envelope, routing
from .base import SioctlManagerBase
from .listener import Listener
from .publisher import Publisher, stream_key
from .queries import Queries, QueryTimeout
from .streams import StreamListener

__all__ = ["QueryTimeout", "SioctlRedisManager"]

# A socket's owner record outlives a dead worker by at most this long.
OWNER_TTL = 60.0
OWNER_REFRESH = OWNER_TTL / 3


class SioctlRedisManager(SioctlManagerBase, socketio.PubSubManager):
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
        self._init_core(transport)
        self.stream_maxlen = stream_maxlen
        self.redis_url = url
        self.redis_options = dict(redis_options or {})
        self.max_queue = max_queue
        # Lookups of other workers' sockets (a plain pooled client: short GETs).
        self.redis = self._new_client()
        self.publisher: Publisher | None = None
        self.listener: Listener | StreamListener | None = None
        self.queries = Queries(self)

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
            **self._traffic_figures(),
        }

    # ---------------------------------------------------------------------- socket owners

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
        for namespace, sid in self._owned_sockets():
            self.publisher.command("set", self._owner_key(namespace, sid), self.host_id,
                                   "px", int(OWNER_TTL * 1000))

    def _reclaim_now(self) -> None:
        """Back on a Redis that may have lost everything: write the owner records at once,
        before this worker hears (and answers) anything, so targeted emits find it again."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            for namespace, sid in self._owned_sockets():
                pipe.set(self._owner_key(namespace, sid), self.host_id, px=int(OWNER_TTL * 1000))
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
            self._owner_lookup_failed(exc)
            return None
        return self._owner_looked_up(namespace, sid, owner)

    # ------------------------------------------------------------------------ publishing

    def _publish(self, data: dict[str, Any]) -> None:
        namespace, target, local = self._addressed(data)
        owner = self._owner_of(target, namespace) if routing.needs_owner(data, local) else None
        channel = routing.route(data, self.channel, local, owner)
        if channel is not None:
            self.publish_raw(channel, data, guard=routing.guard(data, self.channel, channel))

    def _unheard(self, channel: str, raw: Any) -> None:
        """A message for one worker's channel that nobody received: pass it on to the shared
        channel (``routing.unheard``), and forget the owner this worker had cached."""
        message = self._pass_on_unheard(channel, raw)
        if message is not None:
            self.publish_raw(self.channel, message, sequenced=False)

    def publish_raw(self, channel: str, data: dict[str, Any], sequenced: bool = True,
                    guard: tuple[str, str] | None = None) -> None:
        """Queue ``data`` for ``channel`` as it is (no routing), stamped
        (``_outgoing``); ``guard``: see ``Publisher.publish``."""
        if self.publisher is not None:
            self.publisher.publish(channel, self._outgoing(channel, data, sequenced), guard)

    def _listen(self) -> Any:
        assert self.listener is not None
        for channel, raw in self.listener.messages():
            data = self._incoming(channel, raw)
            if data is None:
                continue
            mid = data.get("mid")
            if isinstance(self.listener, StreamListener) and isinstance(mid, str):
                if not self.listener.first_time(mid):
                    continue
            if self.queries.handle(data):
                continue
            if routing.misdelivered(data, channel, self.own_channel, self._holds):
                self.publish_raw(self.channel, envelope.forwarded(data), sequenced=False)
                continue
            yield data

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

