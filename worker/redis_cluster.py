"""Redis Cluster (``redis+cluster://``, issue 20): the clients, the hash tags and the topology.

What a cluster changes for sioctl, and where it is handled:

- Clients: :func:`new_blocking_cluster` / :func:`new_asyncio_cluster` make redis-py's
  ``RedisCluster`` (blocking or ``redis.asyncio``) from the URL's nodes; it learns the slot map
  from them, follows MOVED/ASK redirections and refreshes the map by itself, and its pipelines
  split the commands per node (``worker/redis_clients.py`` calls these for a cluster URL).
- Pub/sub: sharded (SPUBLISH/SSUBSCRIBE, Redis 7), so a channel lives on the shard of its slot
  and each worker's own channel lands on a shard of its own: :mod:`.messaging.sharded`.
- Keys that one command, script or transaction uses together must share a slot: the names
  that need it are wrapped in a hash tag (:func:`tagged`), and only on a cluster, so a single
  Redis keeps its key names. Which: the gateway's registry (its scripts build keys from a
  prefix), and the manager's keys and channels with the streams transport (the guarded XADD
  reads an owner record and writes a worker's stream; XREAD reads two streams) or with
  connection state recovery (the session record is written beside the owner record).
- Status: :func:`topology` (blocking) / :func:`async_topology` describe the shards and their
  health for ``sioctl status`` and the metrics.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from sioctl.cluster.redis_urls import is_cluster, parse_cluster_url

# Options a cluster client does not take (a cluster has db 0 only).
_NOT_FOR_CLUSTER = ("db",)


def _cluster_options(url: str, options: dict[str, Any]) -> tuple[list[tuple[str, int]],
                                                                 dict[str, Any]]:
    parsed = parse_cluster_url(url)
    kwargs = {key: value for key, value in {**options, **parsed.options}.items()
              if key not in _NOT_FOR_CLUSTER}
    return parsed.nodes, kwargs


def new_blocking_cluster(url: str, **options: Any) -> redis.RedisCluster:
    """A blocking ``RedisCluster`` for a ``redis+cluster://`` URL; ``options`` go to every
    node's connections."""
    nodes, kwargs = _cluster_options(url, options)
    return redis.RedisCluster(
        startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in nodes], **kwargs)


def new_asyncio_cluster(url: str, **options: Any) -> redis.asyncio.RedisCluster:
    """A ``redis.asyncio`` ``RedisCluster`` for a ``redis+cluster://`` URL (it learns the slot
    map on its first command, or on ``await client.initialize()``)."""
    nodes, kwargs = _cluster_options(url, options)
    return redis.asyncio.RedisCluster(
        startup_nodes=[redis.asyncio.cluster.ClusterNode(host, port) for host, port in nodes],
        **kwargs)


def is_cluster_client(client: Any) -> bool:
    """Whether ``client`` is a Redis Cluster client (blocking or asyncio)."""
    return isinstance(client, (redis.RedisCluster, redis.asyncio.RedisCluster))


def tagged(name: str) -> str:
    """``name`` as a hash tag: every key or channel that starts with the result hashes to the
    slot of ``name`` (``{name}``; a name already tagged is kept)."""
    return name if name.startswith("{") and "}" in name else "{" + name + "}"


def registry_prefix(url: str | None, channel: str) -> str:
    """The key prefix of the gateway's registry on ``url``: ``CHANNEL:gw:``, in one slot on a
    cluster (its scripts read and write keys they build from the prefix)."""
    base = f"{channel}:gw"
    return (tagged(base) if url is not None and is_cluster(url) else base) + ":"


def _shards(slots: Any) -> list[dict[str, Any]]:
    """The shards of a ``CLUSTER SLOTS`` answer as redis-py parses it: a dict of (first, last)
    -> {"primary": (host, port), "replicas": [...]}."""
    shards: dict[str, dict[str, Any]] = {}
    for (first, last), nodes in sorted(slots.items()):
        host, port = nodes["primary"][:2]
        name = f"{_text(host)}:{port}"
        shard = shards.setdefault(name, {"master": name, "slots": 0, "ranges": [],
                                         "replicas": [f"{_text(r[0])}:{r[1]}"
                                                      for r in nodes.get("replicas", [])]})
        shard["slots"] += int(last) - int(first) + 1
        shard["ranges"].append(f"{first}-{last}")
    return list(shards.values())


def topology(client: Any) -> dict[str, Any]:
    """What ``sioctl status`` shows about a cluster client's Redis: its shards (master, slot
    count and ranges, replicas) and ``state`` (``ok``, or CLUSTER INFO's cluster_state)."""
    info = client.cluster_info(target_nodes=redis.RedisCluster.RANDOM)
    return {"kind": "cluster", "state": _text(info.get("cluster_state", "?")),
            "shards": _shards(client.cluster_slots(target_nodes=redis.RedisCluster.RANDOM))}


async def async_topology(client: Any) -> dict[str, Any]:
    """:func:`topology` for a ``redis.asyncio`` cluster client."""
    info = await client.cluster_info(target_nodes=redis.asyncio.RedisCluster.RANDOM)
    slots = await client.cluster_slots(target_nodes=redis.asyncio.RedisCluster.RANDOM)
    return {"kind": "cluster", "state": _text(info.get("cluster_state", "?")),
            "shards": _shards(slots)}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ------------------------------------------------------------------------------ topology

# How often a worker on Sentinel or a cluster asks which master / shards serve it.
TOPOLOGY_EVERY = 10.0


def topology_kind(url: str) -> str:
    """``single``, ``sentinel`` or ``cluster``: which Redis topology ``url`` names."""
    from sioctl.cluster.redis_urls import is_sentinel

    return "cluster" if is_cluster(url) else "sentinel" if is_sentinel(url) else "single"


def _sentinel(master: Any, service: str) -> dict[str, Any]:
    host, port = master
    return {"kind": "sentinel", "service": service, "master": f"{_text(host)}:{port}",
            "state": "ok"}


def describe(client: Any, url: str) -> dict[str, Any]:
    """Blocking: what the heartbeat says about the Redis topology of ``client`` (made from
    ``url``): the current master of a Sentinel service, a cluster's shards and state;
    ``state`` "unreachable" (and the error's class) when Redis did not answer."""
    kind = topology_kind(url)
    try:
        if kind == "cluster":
            return topology(client)
        if kind == "sentinel":
            pool = client.connection_pool
            return _sentinel(pool.get_master_address(), pool.service_name)
    except Exception as exc:
        return {"kind": kind, "state": "unreachable", "error": type(exc).__name__}
    return {"kind": kind}


async def async_describe(client: Any, url: str) -> dict[str, Any]:
    """:func:`describe` for a ``redis.asyncio`` client."""
    kind = topology_kind(url)
    try:
        if kind == "cluster":
            await client.initialize()
            return await async_topology(client)
        if kind == "sentinel":
            pool = client.connection_pool
            return _sentinel(await pool.get_master_address(), pool.service_name)
    except Exception as exc:
        return {"kind": kind, "state": "unreachable", "error": type(exc).__name__}
    return {"kind": kind}
