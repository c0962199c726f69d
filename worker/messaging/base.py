"""What every sioctl Redis manager does whatever its engine, as python-socketio's
``base_manager`` is to its ``Manager`` and ``AsyncManager``.

:class:`SioctlManagerBase` is mixed into a python-socketio pub/sub manager
(``socketio.PubSubManager`` for eventlet, ``socketio.AsyncPubSubManager`` for asyncio) before
it in the bases. It holds the engine-free state — the owner cache, the sequence numbers, the
loss counter, the latency histogram — and turns a message into what goes on the wire and what
is heard back into a message. It makes no Redis call and starts no task: the subclass does
those, blocking or awaiting.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import envelope, routing
from .latency import LatencyHistogram
from .loss import LossCounter
from .owners import OwnerCache

TRANSPORTS = ("pubsub", "streams")


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

    @property
    def lost(self) -> int:
        """Messages other workers published that never arrived here (pub/sub's losses)."""
        return self.losses.lost

    def _owner_key(self, namespace: str, sid: str) -> str:
        return envelope.owner_key(self.channel, namespace, sid)

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

    def _holds(self, sid: str, namespace: str) -> bool:
        """Whether socket ``sid`` is connected, or connecting, here."""
        return self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)

    def _owned_sockets(self) -> list[tuple[str, str]]:
        """(namespace, sid) of every socket connected here (each has an owner record)."""
        return [(namespace, sid) for namespace, rooms in list(self.rooms.items())
                for sid in list(rooms.get(None, {}))]

    def _outgoing(self, channel: str, data: dict[str, Any],
                  sequenced: bool = True) -> str | bytes:
        """``data`` as sent on ``channel``: stamped with the send time, its sequence number
        (unless ``sequenced`` is False, or it is a callback) and, streams mode, a unique id."""
        seq = self.sequencer.next(channel) if sequenced and envelope.is_sequenced(data) else None
        mid = uuid.uuid4().hex if self.transport == "streams" else None
        encoded: str | bytes = self.json.dumps(envelope.stamp(data, time.time(), seq, mid))
        return encoded

    def _incoming(self, channel: str, raw: Any) -> dict[str, Any] | None:
        """The message in ``raw`` heard on ``channel`` (None: not one), counted: the gap it
        reveals (logged at most every few seconds) and its delivery latency."""
        data = envelope.decode(raw, self.json.loads)
        if data is None:
            return None
        gap = self.losses.heard(channel, data)
        if gap is not None and gap.log:
            self._get_logger().error("%s", gap.text)
        sent = data.get("ts")
        if isinstance(sent, (int, float)) and data.get("host_id") != self.host_id:
            self.latency.observe(time.time() - sent)
        return data

    def _pass_on_unheard(self, channel: str, raw: Any) -> dict[str, Any] | None:
        """What to send on the shared channel for ``raw``, a message for worker channel
        ``channel`` that nobody received (``routing.unheard``); the owner cached for its socket
        is forgotten (it was stale, or that worker is gone)."""
        data = envelope.decode(raw, self.json.loads)
        message = routing.unheard(data, channel, self.channel) if data is not None else None
        if data is not None and message is not None:
            self.owners.forget(envelope.namespace_of(data), envelope.target_of(data))
        return message

    def _traffic_figures(self) -> dict[str, Any]:
        """The engine-free part of ``figures()``."""
        return {"latency": self.latency.figures(), "lost": self.lost}
