"""Redis clients that sioctl's asyncio shells make for idempotent work (the gateway's registry,
Redis sessions, socket id claims).

redis-py's blocking client checks a pooled connection before it uses it and reconnects when a
restarted Redis closed it; its asyncio client (redis-py 8.1, tried here) sends the command on
the dead connection and raises ``ConnectionError: Connection closed by server`` — so the first
registry rewrite after a Redis restart, the moment it matters most, failed. These clients try
such a command once more on a new connection. The manager's publisher keeps its own retries and
outage accounting (worker/messaging/outbox.py): a PUBLISH is not idempotent.
"""

from __future__ import annotations

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def asyncio_client(url: str) -> redis.asyncio.Redis:
    """A ``redis.asyncio`` client for ``url`` that retries a command once, on a new connection,
    when the pooled one turns out closed."""
    return redis.asyncio.Redis.from_url(url, retry=Retry(NoBackoff(), 1),
                                        retry_on_error=[RedisConnectionError])
