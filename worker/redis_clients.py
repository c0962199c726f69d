"""Every Redis client sioctl's workers make, on either engine: :func:`new_blocking` and
:func:`new_asyncio` turn any URL of cluster/redis_urls.py into a client (a Sentinel URL into a
client of the master the sentinels name), and :func:`blocking_client` / :func:`asyncio_client`
are the clients for idempotent work (the gateway's registry, Redis sessions, socket id claims).

A Sentinel client's pool (redis-py's ``SentinelConnectionPool``) asks the sentinels for the
master's address each time it opens a connection, and drops its connections when that address
changed: after a failover, the next connection (the publisher's retry, the listener's
resubscription) reaches the new master without anything of ours re-resolving it.

Their pools are not limited: redis-py 8 limits a pool to 100 connections and then raises
``MaxConnectionsError`` instead of waiting, so a storm of more than 100 disconnects at once on a
worker (each handler unregistering its socket from the gateway's registry) failed most of its
unregisters, and the entries stayed until they expired, their userIds "online" meanwhile. A
connection is only opened when that many commands overlap (the managers' clients do the same,
``redis_setup.REDIS_MAX_CONNECTIONS``).

A pooled connection that a restarted Redis closed is not always found out before it is used:
redis-py's asyncio client (redis-py 8.1, tried here) sends the command on the dead connection
and raises ``ConnectionError: Connection closed by server``, and so does its blocking client
under eventlet with hiredis as its parser (the pool's check, ``can_read``, then answers "data
waiting" for a closed socket — hiredis's closed-socket test needs ``select.poll``, which
eventlet's monkey-patching removes — and a RESP3 pool, redis-py 8's default, ignores that
answer; redis-py's own parser reads the EOF and reconnects). The first registry rewrite after
a Redis restart, the moment it matters most, failed. These clients try such a command once
more on a new connection (redis-py's ``from_url`` clients otherwise make no retry). The
manager's publisher keeps its own retries and outage accounting (worker/messaging/outbox.py):
a PUBLISH is not idempotent.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from sioctl.cluster.redis_urls import is_cluster, is_sentinel, parse_sentinel_url, redis_py_url

from .redis_cluster import new_asyncio_cluster, new_blocking_cluster

# As many connections as commands overlap (see the module's docstring); the managers' pools
# take the same (redis_setup.REDIS_MAX_CONNECTIONS).
MAX_CONNECTIONS = 2**31 - 1


def sentinel_parts(url: str, channel: str, options: dict[str, Any]) -> tuple[
        list[tuple[str, int]], str, dict[str, Any], dict[str, Any] | None]:
    """The sentinels, the service (``channel`` when the URL names none, as python-socketio
    does), the master's connection options (``options`` under the URL's own) and the
    sentinels' (None: redis-py's default, the ``socket_*`` options of the master's; else those
    and the URL's sentinel credentials and TLS options) of a Sentinel ``url``."""
    parsed = parse_sentinel_url(url)
    sentinel_kwargs = None
    if parsed.sentinel_options:
        sentinel_kwargs = {key: value for key, value in options.items()
                           if key.startswith("socket_")}
        sentinel_kwargs.update(parsed.sentinel_options)
    return (parsed.sentinels, parsed.service or channel, {**options, **parsed.options},
            sentinel_kwargs)


def new_blocking(url: str, channel: str = "socketio", **options: Any) -> redis.Redis:
    """A blocking client for any sioctl Redis URL, ``options`` passed to redis-py (with a
    Sentinel URL, to the master's connections; the sentinels get the ``socket_*`` ones; with a
    cluster URL, a ``RedisCluster``, to every node's connections)."""
    if is_cluster(url):
        return new_blocking_cluster(url, **options)  # type: ignore[return-value]
    if is_sentinel(url):
        sentinels, service, kwargs, sentinel_kwargs = sentinel_parts(url, channel, options)
        return redis.sentinel.Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs,
                                       **kwargs).master_for(service)
    return redis.Redis.from_url(redis_py_url(url), **options)


def new_asyncio(url: str, channel: str = "socketio", **options: Any) -> redis.asyncio.Redis:
    """A ``redis.asyncio`` client for any sioctl Redis URL, as :func:`new_blocking`."""
    if is_cluster(url):
        return new_asyncio_cluster(url, **options)  # type: ignore[return-value]
    if is_sentinel(url):
        sentinels, service, kwargs, sentinel_kwargs = sentinel_parts(url, channel, options)
        return redis.asyncio.sentinel.Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs,
                                               **kwargs).master_for(service)
    return redis.asyncio.Redis.from_url(redis_py_url(url), **options)


def blocking_client(url: str, channel: str = "socketio") -> redis.Redis:
    """A blocking (eventlet) client for ``url`` that retries a command once, on a new
    connection, when the pooled one turns out closed; its pool is not limited."""
    return new_blocking(url, channel, retry=Retry(NoBackoff(), 1),
                        retry_on_error=[RedisConnectionError], max_connections=MAX_CONNECTIONS)


def asyncio_client(url: str, channel: str = "socketio") -> redis.asyncio.Redis:
    """A ``redis.asyncio`` client for ``url`` that retries a command once, on a new connection,
    when the pooled one turns out closed; its pool is not limited."""
    return new_asyncio(url, channel, retry=AsyncRetry(NoBackoff(), 1),
                       retry_on_error=[RedisConnectionError], max_connections=MAX_CONNECTIONS)


def queue_on(pipe: Any, command: tuple[str, tuple[Any, ...], dict[str, Any]]) -> None:
    """Queue ``command`` = (redis-py method name, arguments, keyword arguments) on a pipeline
    (blocking or asyncio). EVAL is sent as a plain command: a Redis Cluster pipeline's
    ``eval()`` is another method (it takes no script)."""
    name, args, kwargs = command
    if name == "eval":
        pipe.execute_command("EVAL", *args)
    else:
        getattr(pipe, name)(*args, **kwargs)
