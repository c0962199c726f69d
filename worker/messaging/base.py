"""What every sioctl Redis manager does whatever its engine, as python-socketio's
``base_manager`` is to its ``Manager`` and ``AsyncManager``.

:class:`SioctlManagerBase` is mixed into a python-socketio pub/sub manager
(``socketio.PubSubManager`` for eventlet, ``socketio.AsyncPubSubManager`` for asyncio) before
it in the bases. It holds the engine-free state — the owner cache, the sequence numbers, the
loss counter, the latency histogram — and turns a message into what goes on the wire and what
is heard back into a message. It makes no Redis call and starts no task: the subclass does
those, blocking or awaiting. What it sends to Redis it queues on the shell's publisher
(``Outbox.command``/``publish``, which never block), so the decisions that end in a queued
command (owner records, forwarding, the unheard) are here once for both engines.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from socketio.packet import Packet

from sioctl.cluster.redis_urls import is_cluster
from sioctl.worker.redis_cluster import tagged, topology_kind

from . import envelope, routing
from .latency import LatencyHistogram
from .loss import LossCounter
from .outbox import Outbox, stream_key
from .owners import OwnerCache

TRANSPORTS = ("pubsub", "streams")
# Emit arguments that are never binary (no walk through them for bytes: Packet.data_is_binary).
PLAIN = frozenset({str, int, float, bool, type(None)})
# A socket's owner record outlives a dead worker by at most this long.
OWNER_TTL = 60.0
OWNER_REFRESH = OWNER_TTL / 3


def client_options(url: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of every Redis client a manager makes (``Redis.from_url``, the
    blocking or the asyncio one): ``extra`` over sioctl's defaults."""
    options: dict[str, Any] = {"health_check_interval": 10, "socket_connect_timeout": 5}
    if not url.startswith("unix:"):
        # A half-open TCP connection would otherwise look like a quiet channel.
        options["socket_keepalive"] = True
    options.update(extra)
    return options


def listener_options(url: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a pub/sub listener's client: :func:`client_options`, with
    RESP2 unless ``extra`` (or the URL) names a protocol. redis-py 8 speaks RESP3 by default,
    where every published message is a push that goes through its push-handler path before
    ``get_message`` returns it; as a RESP2 array it costs ~2 µs less per message (8.5 against
    10.8 µs per ``get_message``, docs/benchmarks-optimizations.md, s27-tgt), and the listener
    reads one per message a worker hears. Its client runs SUBSCRIBE, PING and the health
    checks only, which read the same in both protocols (the stream readers' XREAD does not:
    they keep the default)."""
    options = client_options(url, extra)
    options.setdefault("protocol", 2)
    return options


class SioctlManagerBase:
    """The engine-free half of a sioctl Redis manager (see the module docstring)."""

    if TYPE_CHECKING:
        # Provided by python-socketio's manager classes.
        channel: str
        host_id: str
        json: Any
        rooms: dict[str, dict[Any, dict[str, Any]]]

        def is_connected(self, sid: str, namespace: str) -> bool: ...

        def is_pre_connected(self, sid: str, namespace: str) -> bool: ...

        def _get_logger(self) -> logging.Logger: ...

    def _init_core(self, transport: str) -> None:
        """Set up the engine-free state; call after python-socketio's ``__init__`` (which
        chooses ``host_id``)."""
        if transport not in TRANSPORTS:
            raise ValueError(f"transport: 'pubsub' or 'streams', not {transport!r}")
        self.transport = transport
        self.cluster = False  # a Redis Cluster: _init_redis says
        self.own_channel = envelope.worker_channel(self.channel, self.host_id)
        self.owners = OwnerCache()
        # Whether Redis failed the last owner lookup or record (logged once per outage).
        self._lookups_failing = False
        self.latency = LatencyHistogram()
        # Per-channel sequence numbers of what this worker publishes, and the gaps it sees in
        # what others publish: pub/sub's losses, counted.
        self.sequencer = envelope.Sequencer()
        self.losses = LossCounter(self.host_id, self.own_channel)
        # Run (each in a background task) whenever the listener is back on a Redis that may
        # have lost everything: the gateway registry and socket id claims write themselves
        # again, as the owner records do.
        self.when_redis_back: list[Callable[[], Any]] = []
        # The shell's publisher (an Outbox) and reader, made by its initialize().
        self.publisher: Outbox | None = None
        self.listener: Any = None

    def _init_redis(self, url: str, redis_options: dict[str, Any] | None, max_queue: int,
                    stream_maxlen: int) -> None:
        """Keep the Redis settings every client of the shell is made from, and make the pooled
        client for lookups of other workers' sockets (short GETs): ``_new_client`` is the
        shell's (blocking or asyncio)."""
        self.redis_url = url
        # A Redis Cluster: sharded pub/sub (.sharded); with streams, one slot (_one_slot).
        self.cluster = is_cluster(url)
        # What status shows of the Redis topology; the shell's watch refreshes it on Sentinel
        # (the current master) and a cluster (its shards and state).
        self.topology: dict[str, Any] = {"kind": topology_kind(url)}
        if self.cluster and self.transport == "streams":
            self._one_slot()
        self.redis_options = dict(redis_options or {})
        self.max_queue = max_queue
        self.stream_maxlen = stream_maxlen
        self.redis = self._new_client()

    def _one_slot(self) -> None:
        """On a Redis Cluster, put every key and channel of this manager in the slot of its
        channel (a hash tag, ``{socketio}``): the streams transport's guarded XADD reads a
        socket's owner record and writes a worker's stream in one script and its XREAD reads
        two streams, and recovery writes a session record beside an owner record; keys of
        two slots would be refused. Their traffic is then served by one shard (pub/sub's
        spreads)."""
        self.channel = tagged(self.channel)
        self.own_channel = envelope.worker_channel(self.channel, self.host_id)
        self.losses = LossCounter(self.host_id, self.own_channel)

    @property
    def merging(self) -> bool:
        """Whether several messages for one worker go as one PUBLISH on its merged channel
        (``outbox.merged``, ``envelope.merged_channel``): with pub/sub on one Redis. Not on a
        Redis Cluster, where a worker's channel and its merged channel would hash to two
        slots, served by two connections, and the order between them would be lost."""
        return self.transport == "pubsub" and not self.cluster

    def _sharded_publisher(self) -> None:
        """On a Redis Cluster, the publisher SPUBLISHes (sharded pub/sub, .sharded); where
        ``merging``, the consecutive PUBLISHes of a batch to one worker go as one."""
        if self.publisher is None:
            return
        if self.cluster:
            self.publisher.publish_verb = "spublish"
        if self.merging:
            self.publisher.merge_prefix = f"{self.channel}{envelope.WORKER_INFIX}"

    def listened_channels(self) -> list[str]:
        """What this worker's reader subscribes to: the shared channel, its own, and where
        ``merging`` its merged channel (one connection, so Redis keeps their order)."""
        channels = [self.channel, self.own_channel]
        if self.merging:
            channels.append(envelope.merged_channel(self.own_channel))
        return channels

    def _heard_on(self, channel: str) -> str:
        """The channel a message heard on ``channel`` counts as: its own channel for its
        merged channel (sequence numbers and misdelivery are the worker channel's)."""
        return envelope.unmerged(channel, self.channel)

    def _new_client(self) -> Any:
        raise NotImplementedError  # the shell's: a blocking or an asyncio client

    @property
    def subscribed(self) -> bool:
        """Whether this worker's reader is subscribed (streams: reading) now."""
        return self.listener is not None and bool(self.listener.subscribed)

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
            "topology": self.topology,
            **self._traffic_figures(),
        }

    @property
    def lost(self) -> int:
        """Messages other workers published that never arrived here (pub/sub's losses)."""
        return self.losses.lost

    def _owner_key(self, namespace: str, sid: str) -> str:
        return envelope.owner_key(self.channel, namespace, sid)

    def _owner_record(self, namespace: str, sid: str) -> tuple[Any, ...]:
        """The Redis command that records this worker as the owner of ``sid``."""
        return ("set", self._owner_key(namespace, sid), self.host_id, "px",
                int(OWNER_TTL * 1000))

    def _connected_here(self, namespace: str, sid: str) -> None:
        """Socket ``sid`` connected here: forget what was cached about it and (pub/sub; streams
        mode recorded it in ``pre_connect`` already) queue its owner record."""
        self.owners.forget(namespace, sid)
        if self.publisher is not None and self.transport == "pubsub":
            self.publisher.command(*self._owner_record(namespace, sid))

    def _record_owner_later(self, namespace: str, sid: str, exc: Exception | None) -> None:
        """Writing the owner record of ``sid`` at once failed (``exc``; None: Redis is known
        to be away): queue it with the rest instead of holding every connect up."""
        if exc is not None:
            self._lookups_failing = True
            self._get_logger().warning("cannot record socket owners (%s); queueing them "
                                       "until Redis answers", exc)
        if self.publisher is not None:
            self.publisher.command(*self._owner_record(namespace, sid))

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> Any:
        if self.publisher is not None and (
            self.is_connected(sid, namespace)
            # Streams mode recorded a socket refused by its connect handler too.
            or (self.transport == "streams" and self.is_pre_connected(sid, namespace))
        ):
            self.publisher.command("del", self._owner_key(namespace, sid))
        return super().basic_disconnect(sid, namespace, **kwargs)  # type: ignore[misc]

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
            self.publisher.command(*self._owner_record(namespace, sid))

    def _cached_owner(self, sid: Any, namespace: str) -> tuple[bool, str | None]:
        """(True, owner) when the owner of ``sid`` is known without asking Redis (owner None:
        nobody, or ``sid`` is no socket id); (False, None) when Redis must be asked."""
        if not isinstance(sid, str):
            return True, None
        return self.owners.get(namespace, sid)

    def _owner_lookup_failed(self, exc: Exception) -> None:
        """A lookup of a socket's owner failed: the message goes to every worker meanwhile;
        said once per outage."""
        if not self._lookups_failing:
            self._lookups_failing = True
            self._get_logger().warning("cannot look up socket owners (%s); sending to every "
                                       "worker until Redis answers", exc)

    def _owner_looked_up(self, namespace: str, sid: str, raw: Any) -> str | None:
        """The owner Redis answered for ``sid`` (None: nobody), remembered in the cache."""
        if self._lookups_failing:
            self._lookups_failing = False
            self._get_logger().info("socket owner lookups work again")
        found = raw.decode() if isinstance(raw, bytes) else raw
        self.owners.put(namespace, sid, found)
        return found

    def _addressed(self, data: dict[str, Any]) -> tuple[str, Any, bool]:
        """(namespace, target, local) of an outgoing message: the socket or room it addresses
        (``envelope.target_of``) and whether that is a socket connected here."""
        namespace, target = envelope.namespace_of(data), envelope.target_of(data)
        return namespace, target, target is not None and self.is_connected(target, namespace)

    def _nobody_here(self, message: dict[str, Any]) -> bool:
        """Whether ``message`` is this worker's own emit to one socket or room that has no
        participant here. python-socketio's ``emit()`` hands every emit to ``_handle_emit``
        before publishing it, and that encodes the packet before it finds nobody to send it
        to: for an emit to a socket of another worker, a JSON encode for nothing (7 % of the
        sending worker's CPU in the targeted benchmark)."""
        room = message.get("room")
        return (isinstance(room, str) and message.get("host_id") == self.host_id
                and room not in self.rooms.get(message.get("namespace") or "/", {}))

    def _holds(self, sid: str, namespace: str) -> bool:
        """Whether socket ``sid`` is connected, or connecting, here."""
        return self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)

    def _owned_sockets(self) -> list[tuple[str, str]]:
        """(namespace, sid) of every socket connected here (each has an owner record)."""
        return [(namespace, sid) for namespace, rooms in list(self.rooms.items())
                for sid in list(rooms.get(None, {}))]

    def _send_routed(self, data: dict[str, Any], local: bool, owner: str | None) -> None:
        """Queue ``data`` where ``routing.route`` says (``local``/``owner``: see there), with
        the streams guard for a worker's channel."""
        channel = routing.route(data, self.channel, local, owner)
        if channel is not None:
            self.publish_raw(channel, data, guard=routing.guard(data, self.channel, channel))

    def _direct_emit(self, event: str, data: Any, namespace: str | None, room: Any,
                     skip_sid: Any, callback: Any, kwargs: dict[str, Any]) -> bool:
        """Queue an emit to one socket (or room) of another worker straight on that worker's
        channel and say True; False (nothing done) when it is not that simple, and python-
        socketio's ``emit`` (local delivery, ``_publish``) takes it.

        The simple case, the targeted emit: no callback, not binary, no recovery stream, the
        addressee has nobody here and the owner cache names its worker (the first emit to a
        socket asks Redis through the general path, which fills the cache). The message, its
        stamp (send time, the channel's sequence number, streams' id and guard) and its queue
        are those of the general path (``PubSubManager.emit`` -> ``_publish`` ->
        ``_send_routed``), built once instead of as a message, a routed copy and a stamped
        copy (with pub/sub, its text written around the encoded arguments: ``envelope.
        emit_text``); queued on the same outbox, so its order with everything else this worker
        publishes is kept."""
        if (callback is not None or not isinstance(room, str) or self.publisher is None
                or kwargs.get("ignore_queue") or getattr(self, "sessions", None) is not None):
            return False
        namespace = namespace or "/"
        if room in self.rooms.get(namespace, ()):  # a socket, or a room with someone, here
            return False
        known, owner = self.owners.get(namespace, room)
        if not known or owner is None:
            return False
        args = list(data) if isinstance(data, tuple) else [data]
        if type(data) not in PLAIN and Packet.data_is_binary(args):
            return False
        channel = envelope.worker_channel(self.channel, owner)
        if self.transport == "streams":
            message = _emit_message(event, args, namespace, room, skip_sid, self.host_id)
            guard = (self._owner_key(namespace, room), owner)
            self.publisher.publish(channel, self._outgoing(channel, message, fresh=True), guard)
            return True
        # Pub/sub: the message's text written at once (envelope.emit_text; no message id, no
        # guard), else as _outgoing writes it, with the same stamp.
        now, seq = time.time(), self.sequencer.next(channel)
        text = envelope.emit_text(self.json.dumps, event, args, namespace, room, skip_sid,
                                  self.host_id, now, seq) if type(event) is str else None
        if text is None:
            message = _emit_message(event, args, namespace, room, skip_sid, self.host_id)
            text = self.json.dumps(envelope.stamp(message, now, seq, copy=False))
        self.publisher.publish(channel, text)
        return True

    def publish_raw(self, channel: str, data: dict[str, Any], sequenced: bool = True,
                    guard: tuple[str, str] | None = None) -> None:
        """Queue ``data`` for ``channel`` as it is (no routing), stamped (``_outgoing``);
        ``guard``: see ``Outbox.publish``."""
        if self.publisher is not None:
            self.publisher.publish(channel, self._outgoing(channel, data, sequenced), guard)

    def _unheard(self, channel: str, raw: Any) -> None:
        """The messages (one, or several merged: ``envelope.messages_in``) for one worker's
        channel that nobody received: each passed on to the shared channel, in order
        (``routing.unheard``), and the owner this worker had cached forgotten. A merged
        PUBLISH nobody received went to a worker gone, or to one of an earlier sioctl that
        does not read merged channels."""
        channel = envelope.unmerged(channel, self.channel)
        for data in envelope.messages_in(raw, self.json.loads):
            message = self._passed_on(channel, data)
            if message is not None:
                self.publish_raw(self.channel, message, sequenced=False)

    def _heard(self, channel: str, raw: Any) -> list[dict[str, Any]]:
        """The messages in ``raw`` heard on ``channel`` (one, or several published as one:
        ``envelope.messages_in``), in order, each counted (``_count_heard``); without those
        (streams) this reader handled already."""
        heard = envelope.messages_in(raw, self.json.loads)
        now = time.time()
        for data in heard:
            self._count_heard(channel, data, now)
        first_time = getattr(self.listener, "first_time", None)
        if first_time is None:
            return heard
        return [data for data in heard
                if not isinstance(data.get("mid"), str) or first_time(data["mid"])]

    def _passed_on_misdelivered(self, channel: str, data: dict[str, Any]) -> bool:
        """Whether ``data`` is a targeted message for a socket not here (``routing.
        misdelivered``), which is then passed on to the shared channel."""
        if not routing.misdelivered(data, channel, self.own_channel, self._holds):
            return False
        self.publish_raw(self.channel, envelope.forwarded(data), sequenced=False)
        return True

    def _outgoing(self, channel: str, data: dict[str, Any], sequenced: bool = True,
                  mid: bool = False, fresh: bool = False) -> str | bytes:
        """``data`` as sent on ``channel``: stamped with the send time, its sequence number
        (unless ``sequenced`` is False, or it is a callback) and, streams mode (or ``mid``:
        any stream), a unique id; ``fresh``: ``data`` is the caller's own, stamped in place."""
        seq = self.sequencer.next(channel) if sequenced and envelope.is_sequenced(data) else None
        unique = uuid.uuid4().hex if mid or self.transport == "streams" else None
        stamped = envelope.stamp(data, time.time(), seq, unique, copy=not fresh)
        encoded: str | bytes = self.json.dumps(stamped)
        return encoded

    def _incoming(self, channel: str, raw: Any) -> dict[str, Any] | None:
        """The message in ``raw`` heard on ``channel`` (None: not one), counted
        (``_count_heard``)."""
        data = envelope.decode(raw, self.json.loads)
        if data is not None:
            self._count_heard(channel, data, time.time())
        return data

    def _count_heard(self, channel: str, data: dict[str, Any], now: float) -> None:
        """Count message ``data`` heard on ``channel`` at ``now``: the gap it reveals (logged
        at most every few seconds) and its delivery latency."""
        gap = self.losses.heard(channel, data)
        if gap is not None and gap.log:
            self._get_logger().error("%s", gap.text)
        sent = data.get("ts")
        if isinstance(sent, (int, float)) and data.get("host_id") != self.host_id:
            self.latency.observe(now - sent)

    def _pass_on_unheard(self, channel: str, raw: Any) -> dict[str, Any] | None:
        """What to send on the shared channel for ``raw``, one message for worker channel
        ``channel`` that nobody received (``_passed_on``)."""
        data = envelope.decode(raw, self.json.loads)
        return self._passed_on(channel, data) if data is not None else None

    def _passed_on(self, channel: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """What to send on the shared channel for ``data``, a message for worker channel
        ``channel`` that nobody received (``routing.unheard``); the owner cached for its socket
        is forgotten (it was stale, or that worker is gone)."""
        message = routing.unheard(data, channel, self.channel)
        if message is not None:
            self.owners.forget(envelope.namespace_of(data), envelope.target_of(data))
        return message

    def _traffic_figures(self) -> dict[str, Any]:
        """The engine-free part of ``figures()``."""
        return {"latency": self.latency.figures(), "lost": self.lost}


def _emit_message(event: str, args: list[Any], namespace: str, room: str, skip_sid: Any,
                  host_id: str) -> dict[str, Any]:
    """python-socketio's message for an emit without a callback, not binary (the one
    ``PubSubManager.emit`` builds)."""
    return {"method": "emit", "event": event, "data": args, "binary": False,
            "namespace": namespace, "room": room, "skip_sid": skip_sid, "callback": None,
            "host_id": host_id}
