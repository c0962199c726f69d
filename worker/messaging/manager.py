"""The client manager every worker uses: python-socketio's pub/sub protocol, hardened.

- Publishing goes through :class:`Publisher` (one connection, batches, a bounded queue).
- Listening goes through :class:`Listener` (reconnects and resubscribes, never dies).
- Targeted delivery: each worker also listens on a channel of its own, and records in Redis
  which worker owns each of its sockets. An emit (or a disconnect, a room change, an ack) for
  one socket goes to the owner's channel only; a socket of this worker is not published at all.
  Room emits and broadcasts still go to the shared channel.

Messages are python-socketio's own (``method``, ``host_id``...), so a worker running the stock
RedisManager on the shared channel still understands the broadcasts.

This class is the eventlet shell: the blocking Redis calls and the green threads. Everything
it decides is engine-free and shared with the asyncio shell (:mod:`.async_manager`):
:class:`.base.SioctlManagerBase` (owner records, routing, forwarding, counting, figures), what
it sends and reads (:mod:`.envelope`), the losses it counts (:mod:`.loss`), the owner cache
(:mod:`.owners`), where a message goes (:mod:`.routing`), the publisher's queue
(:mod:`.outbox`) and the readers' state (:mod:`.reading`).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
import socketio

from sioctl.worker.flow import run
from sioctl.worker.redis_clients import new_blocking
from sioctl.worker.redis_cluster import TOPOLOGY_EVERY, describe

from . import routing
from .base import OWNER_REFRESH, OWNER_TTL, SioctlManagerBase, client_options, listener_options
from .bursts import Held, hold_or_log, write_held
from .fanout import FanoutMixin
from .listener import Listener
from .owners import rewrite_flow
from .publisher import Publisher
from .queries import Queries, QueryTimeout
from .recovering import RecoveryMixin
from .recovery import Restore
from .streams import RecoveryReader, StreamListener

__all__ = ["OWNER_TTL", "QueryTimeout", "SioctlRedisManager"]


class SioctlRedisManager(RecoveryMixin, SioctlManagerBase, socketio.PubSubManager,
                         FanoutMixin):
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
        self._init_redis(url, redis_options, max_queue, stream_maxlen)
        self.queries = Queries(self)

    # ----------------------------------------------------------------------- connections

    def _new_client(self) -> redis.Redis:
        return new_blocking(self.redis_url, self.channel,
                            **client_options(self.redis_url, self.redis_options))

    def _new_listener_client(self) -> redis.Redis:
        return new_blocking(self.redis_url, self.channel,
                            **listener_options(self.redis_url, self.redis_options))

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
        self._sharded_publisher()
        self.publisher.start()
        # The pub/sub listener's client speaks RESP2 (base.listener_options); the stream
        # reader's keeps the default, its XREAD answers differ between the protocols.
        streams = self.transport == "streams"
        connect = self._new_client if streams else self._new_listener_client
        reader = StreamListener if streams else Listener
        self.listener = reader(connect, self.listened_channels(),
                               self.server.sleep, logger, self._reclaim_now)
        if self.sessions is not None:
            self.recovery_reader = RecoveryReader(self._new_client, [self.recovery_channel],
                                                  self.server.sleep, logger)
            self.server.start_background_task(self._recovery_thread)
        super().initialize()  # starts _thread, which reads _listen()
        self.server.start_background_task(self._refresh_owners)
        if self.topology["kind"] != "single":
            self.server.start_background_task(self._watch_topology)

    def _watch_topology(self) -> None:
        """Keep ``topology`` (status, metrics) current: the master, or the shards."""
        while True:
            self.topology = describe(self.redis, self.redis_url)
            self.server.sleep(TOPOLOGY_EVERY)

    @property
    def subscribed(self) -> bool:
        """Whether this worker's readers (and, with recovery, its recovery stream reader)
        are reading now."""
        reading = SioctlManagerBase.subscribed.fget(self)  # type: ignore[attr-defined]
        if self.recovery_reader is not None:
            reading = reading and bool(self.recovery_reader.subscribed)
        return bool(reading)

    def _recovery_thread(self) -> None:
        """Deliver the recovery stream's events here, in order, forever."""
        for offset, raw in self.recovery_reader.messages():
            try:
                self._deliver_entry(offset, raw)
            except Exception:
                self._get_logger().exception("cannot deliver recovery stream entry %s", offset)

    def _record_refresh(self) -> float:
        return OWNER_REFRESH

    # ---------------------------------------------------------------------- socket owners

    def pre_connect(self, eio_sid: str, namespace: str) -> Any:
        sessions = self.sessions
        pid, restore = (None, None) if sessions is None else \
            sessions.connecting.get((eio_sid, namespace), (None, None))
        if sessions is not None and restore is not None:
            # The reader leaves the socket out from the moment it can be a participant
            # until its replay has caught up with the reader.
            sessions.catching_up.add((namespace, restore.record.sid))
        sid = super().pre_connect(eio_sid, namespace)
        if sid is not None and self.transport == "streams":
            # Before the client hears CONNECT: from then on no guarded XADD (GUARDED_XADD)
            # can put a message for this socket on the stream of a worker it left.
            self._record_owner_now(namespace, sid)
        if sessions is not None and sid is not None and pid is not None:
            sessions.pids[(namespace, sid)] = pid
            if restore is not None and restore.record.sid == sid:
                self._finish_restore(restore, sid)
        if sessions is not None and restore is not None:
            sessions.catching_up.discard((namespace, restore.record.sid))
        return sid

    def connect(self, sid: str, namespace: str) -> Any:
        sid = super().connect(sid, namespace)
        self._connected_here(namespace, sid)
        if self.sessions is not None:
            self._write_record(namespace, sid, self.sessions.record_ttl_ms(OWNER_REFRESH))
        return sid

    # ----------------------------------------------------------- connection state recovery

    def start_restore(self, namespace: str, auth: Any) -> tuple[str, Restore | None]:
        """The private id a CONNECT to ``namespace`` gets, and the restore its ``auth`` asks
        for when one can be made (``RecoveryMixin.start_restore_flow``). Blocking."""
        return run(self.start_restore_flow(namespace, auth))

    def _finish_restore(self, restore: Restore, sid: str) -> None:
        """Socket ``sid`` came back (``RecoveryMixin.finish_restore_flow``). Blocking."""
        run(self.finish_restore_flow(restore, sid))

    def _record_owner_now(self, namespace: str, sid: str) -> None:
        """Write the owner record of ``sid`` at once (one round trip); while Redis does not
        answer, queue it with the rest instead of holding every connect up."""
        if not self._lookups_failing:
            try:
                self.redis.execute_command(*self._owner_record(namespace, sid))
                return
            except redis.RedisError as exc:
                self._record_owner_later(namespace, sid, exc)
                return
        self._record_owner_later(namespace, sid, None)

    def _refresh_owners(self) -> None:
        while True:
            self.server.sleep(OWNER_REFRESH)
            self._claim_owned_sockets()

    def _reclaim_now(self) -> None:
        """Back on a Redis that may have lost everything: write the owner records at once
        (``owners.rewrite_flow``: a second try on a new connection), before this worker hears
        (and answers) anything, so targeted emits find it again; then start the
        ``when_redis_back`` hooks."""
        records = [self._owner_record(namespace, sid) for namespace, sid in self._owned_sockets()]
        if run(rewrite_flow(self.redis, records, self._get_logger())):
            self._lookups_failing = False
        for callback in self.when_redis_back:
            self.server.start_background_task(callback)

    def _owner_of(self, sid: Any, namespace: str) -> str | None:
        """The host id of the worker that owns socket ``sid``, if one does."""
        known, cached = self._cached_owner(sid, namespace)
        if known:
            return cached
        try:
            owner = self.redis.get(self._owner_key(namespace, sid))
        except redis.RedisError as exc:
            self._owner_lookup_failed(exc)
            return None
        return self._owner_looked_up(namespace, sid, owner)

    # ------------------------------------------------------------------------ publishing

    def emit(self, event: str, data: Any, namespace: Any = None, room: Any = None,
             skip_sid: Any = None, callback: Any = None, to: Any = None,
             **kwargs: Any) -> Any:
        """python-socketio's emit; a plain emit to a socket of another worker is queued for
        it directly (``SioctlManagerBase._direct_emit``)."""
        if self._direct_emit(event, data, namespace, to or room, skip_sid, callback, kwargs):
            return None
        return super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid,
                            callback=callback, to=to, **kwargs)

    def _publish(self, data: dict[str, Any]) -> None:
        if self._recovery_publish(data):
            return
        namespace, target, local = self._addressed(data)
        owner = self._owner_of(target, namespace) if routing.needs_owner(data, local) else None
        self._send_routed(data, local, owner)

    def _listen(self) -> Any:
        """What python-socketio's listener thread handles, read a burst at a time: another
        worker's emit to a room or socket here is delivered at once, its frames held and
        written per socket at the end of the burst (.bursts); anything else first has the
        held frames written, so every socket gets what it is sent in order."""
        assert self.listener is not None
        held = Held()
        for batch in self.listener.batches():
            for heard_on, raw in batch:
                channel = self._heard_on(heard_on)
                for data in self._heard(channel, raw):
                    if self._passed_on_misdelivered(channel, data) or hold_or_log(self, data, held):
                        continue
                    if held:
                        write_held(self, held)
                    if self.queries.handle(data):
                        continue
                    yield data
            if held:
                write_held(self, held)

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

