"""Redis clients that sioctl's shells make for idempotent work (the gateway's registry, Redis
sessions, socket id claims).

Their pools are not limited: redis-py 8 limits a pool to 100 connections and then raises
``MaxConnectionsError`` instead of waiting, so a storm of more than 100 disconnects at once on a
worker (each handler unregistering its socket from the gateway's registry) failed most of its
unregisters, and the entries stayed until they expired, their userIds "online" meanwhile. A
connection is only opened when that many commands overlap (the managers' clients do the same,
``redis_setup.REDIS_MAX_CONNECTIONS``).

redis-py's blocking client checks a pooled connection before it uses it and reconnects when a
restarted Redis closed it; its asyncio client (redis-py 8.1, tried here) sends the command on
the dead connection and raises ``ConnectionError: Connection closed by server`` — so the first
registry rewrite after a Redis restart, the moment it matters most, failed. These clients try
such a command once more on a new connection. The manager's publisher keeps its own retries and
outage accounting (worker/messaging/outbox.py): a PUBLISH is not idempotent.
"""

from __future__ import annotations

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

# As many connections as commands overlap (see the module's docstring); the managers' pools
# take the same (redis_setup.REDIS_MAX_CONNECTIONS).
MAX_CONNECTIONS = 2**31 - 1


def blocking_client(url: str) -> redis.Redis:
    """A blocking (eventlet) client for ``url`` whose pool is not limited."""
    return redis.Redis.from_url(url, max_connections=MAX_CONNECTIONS)


def asyncio_client(url: str) -> redis.asyncio.Redis:
    """A ``redis.asyncio`` client for ``url`` that retries a command once, on a new connection,
    when the pooled one turns out closed; its pool is not limited."""
    return redis.asyncio.Redis.from_url(url, retry=Retry(NoBackoff(), 1),
                                        retry_on_error=[RedisConnectionError],
                                        max_connections=MAX_CONNECTIONS)
