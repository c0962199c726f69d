"""Messages to the gateway's clients from outside the cluster: a cron job, a web backend.

Anything with access to the cluster's Redis can emit: on a single Redis (or Sentinel),
python-socketio's own ``socketio.RedisManager(url, channel=..., write_only=True)`` speaks the
protocol every worker listens to, for events, rooms and socket ids. On a Redis Cluster the
workers hear sharded pub/sub only (SSUBSCRIBE, :mod:`sioctl.worker.messaging.sharded`) and that
emitter PUBLISHes, so :class:`ExternalGateway` (its :meth:`~ExternalGateway.emit`) is the way
in on every topology. It adds what needs the gateway's registry: sending to a userId, and
broadcasting to an app, as ``responseMessage``. It is trusted like the Redis it writes to; the
HTTP API is the signed way in for others.
"""

from __future__ import annotations

from typing import Any

import socketio

from sioctl.cluster.redis_urls import is_cluster, redis_py_url
from sioctl.worker.redis_clients import new_blocking
from sioctl.worker.redis_cluster import registry_prefix, tagged

from . import wire
from .plugin import NAMESPACE, broadcast_rooms
from .registry import RedisRegistry


class ClusterEmitter(socketio.PubSubManager):
    """python-socketio's write-only emitter for a Redis Cluster: the messages its
    ``RedisManager`` writes (``PubSubManager.emit`` builds them, JSON-encoded as there), sent
    with SPUBLISH through redis-py's ``RedisCluster``, which routes the channel to the master
    of its slot, where the workers SSUBSCRIBE it.

    Workers with connection state recovery on a cluster listen on the hash-tagged channel
    (``{socketio}``, ``SioctlManagerBase._one_slot``) instead, which nothing outside them can
    know: each message goes to both channels, and a worker listens on one of them, so it is
    delivered once (SPUBLISH to a channel nobody hears costs one round trip and is
    dropped)."""

    name = "rediscluster"

    def __init__(self, url: str, channel: str = "socketio") -> None:
        super().__init__(channel=channel, write_only=True)
        self.redis = new_blocking(url, channel)
        self.channels = list(dict.fromkeys([channel, tagged(channel)]))

    def _publish(self, data: Any) -> int:
        """SPUBLISH ``data`` (JSON, which the workers' listener decodes: envelope.decode);
        returns how many subscribers received it."""
        raw = self.json.dumps(data)
        return sum(int(self.redis.spublish(channel, raw)) for channel in self.channels)


class ExternalGateway:
    """Send gateway messages (and plain events) into a running cluster through its Redis,
    single, Sentinel or Cluster.

    ``channel`` is the cluster's Redis channel (``--redis-channel``, default ``socketio``).
    """

    def __init__(self, redis_url: str, channel: str = "socketio") -> None:
        self.registry = RedisRegistry(new_blocking(redis_url, channel),
                                      prefix=registry_prefix(redis_url, channel))
        self.emitter: socketio.PubSubManager
        if is_cluster(redis_url):
            # python-socketio's emitter PUBLISHes; on a cluster the workers hear SPUBLISH only.
            self.emitter = ClusterEmitter(redis_url, channel)
        else:
            self.emitter = socketio.RedisManager(
                # python-socketio reads valkey:// with the valkey package; redis-py serves it.
                redis_py_url(redis_url), channel=channel, write_only=True)

    def emit(self, event: str, data: Any = None, to: str | None = None,
             namespace: str | None = None) -> None:
        """Emit ``event`` with ``data`` to everyone in ``namespace`` (default ``/``), or to the
        room or socket id ``to``, on every worker and node, as python-socketio's write-only
        ``RedisManager.emit`` does (no ack callback: nobody here would receive it)."""
        self.emitter.emit(event, data, namespace=namespace, room=to)

    def send(self, target: str, payload: Any, app: str, user_id: str | None = None) -> bool:
        """Deliver ``payload`` to ``target`` (a client id or a userId) as an ``exchange``;
        False when it is not online."""
        sid = self.registry.resolve(target)
        if sid is None:
            return False
        message = wire.parse_exchange_msg(
            payload, {"app": app, "client": "external", "userId": user_id, "target": target}
        )
        self.emitter.emit(wire.RESPONSE_MESSAGE, message, room=sid, namespace=NAMESPACE)
        return True

    def broadcast(self, app: str, payload: Any) -> None:
        """Send ``payload`` as a ``broadcast`` to every client of ``app``, and to those bound
        to no app yet (as a client's broadcast: :func:`~.plugin.broadcast_rooms`)."""
        message = wire.parse_broadcast_msg(payload, {"app": app, "client": "external",
                                                       "target": None})
        for room in broadcast_rooms(app):
            self.emitter.emit(wire.RESPONSE_MESSAGE, message, room=room, namespace=NAMESPACE)
