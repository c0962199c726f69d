"""The Redis URLs sioctl accepts, parsed without touching a Redis client (the supervisor checks
them; worker/redis_clients.py turns them into clients of either engine).

- ``redis://``, ``rediss://`` (TLS), ``unix://``: redis-py's own syntax.
- ``valkey://``, ``valkeys://`` (TLS): the same, for a Valkey server. Valkey speaks the Redis
  protocol, so redis-py serves them (read as ``redis://`` / ``rediss://``); no second client
  library is needed.
- ``redis+sentinel://[[user]:password@]h1:p1,h2:p2,.../DB/SERVICE`` (and ``valkey+sentinel://``):
  python-socketio's syntax (``socketio.redis_manager.parse_redis_sentinel_url``). The sentinels
  are asked for the master of SERVICE (the Redis channel when the URL names none, as
  python-socketio does); the user name and password are the master's, DB its database.
  ``rediss+sentinel://`` (``valkeys+sentinel://``): TLS to the sentinels and the master. Query
  options (sioctl's): ``sentinel_username``/``sentinel_password`` when the sentinels ask for
  their own credentials (python-socketio takes them as ``redis_options={"sentinel_kwargs":
  ...}``), and ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``,
  ``ssl_check_hostname`` (for both).
- ``redis+cluster://[[user]:password@]h1:p1,h2:p2,...`` (and ``valkey+cluster://``; with TLS
  ``rediss+cluster://``, ``valkeys+cluster://``): a Redis Cluster, any of its nodes named (the
  client learns the others from them). No database: a cluster has only db 0. python-socketio
  has no such URL; the syntax follows the Sentinel one.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any

PLAIN_SCHEMES = ("redis", "rediss", "valkey", "valkeys", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "valkey+sentinel", "rediss+sentinel", "valkeys+sentinel")
# Query options of a Sentinel URL (sioctl's; python-socketio's syntax has none): the sentinels'
# own credentials, and TLS options for the sentinels and the master (``rediss+sentinel://``).
_SENTINEL_AUTH = {"sentinel_username": "username", "sentinel_password": "password"}
_TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
                "ssl_check_hostname")
CLUSTER_SCHEMES = ("redis+cluster", "valkey+cluster", "rediss+cluster", "valkeys+cluster")
REDIS_SCHEMES = PLAIN_SCHEMES + SENTINEL_SCHEMES + CLUSTER_SCHEMES
# The schemes redis-py reads for the Valkey ones.
_REDIS_PY_SCHEME = {"valkey": "redis", "valkeys": "rediss"}
SCHEMES_TEXT = "redis://, rediss://, valkey://, valkeys://, unix://, redis+sentinel://, " \
    "rediss+sentinel://, valkey+sentinel://, redis+cluster:// or valkey+cluster://"


@dataclass(frozen=True)
class SentinelUrl:
    """A ``redis+sentinel://`` URL taken apart: the sentinels' addresses, the service (None
    when the URL names none), the master's connection options (db, username, password; TLS)
    and the sentinels' own (their credentials; TLS), empty unless the URL gives them."""

    sentinels: list[tuple[str, int]]
    service: str | None
    options: dict[str, Any] = field(default_factory=dict)
    sentinel_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterUrl:
    """A ``redis+cluster://`` URL taken apart: the nodes named (the startup nodes) and the
    connection options of every node (username, password, ssl)."""

    nodes: list[tuple[str, int]]
    options: dict[str, Any] = field(default_factory=dict)


def scheme(url: str) -> str:
    """The lower-cased scheme of ``url`` ("" when it has none)."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


def is_sentinel(url: str) -> bool:
    """True when ``url`` finds its master through Redis Sentinel."""
    return scheme(url) in SENTINEL_SCHEMES


def is_cluster(url: str) -> bool:
    """True when ``url`` names a Redis Cluster (sharded pub/sub, hash-tagged keys)."""
    return scheme(url) in CLUSTER_SCHEMES


def redis_py_url(url: str) -> str:
    """``url`` as redis-py's ``from_url`` reads it: ``valkey(s)://`` become ``redis(s)://``."""
    name = scheme(url)
    if name in _REDIS_PY_SCHEME:
        return _REDIS_PY_SCHEME[name] + url[len(name):]
    return url


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The sentinels, service and master options of a ``redis+sentinel://`` URL; raises
    ValueError (without the password) when it is not one."""
    if not is_sentinel(url):
        raise ValueError("not a redis+sentinel:// or valkey+sentinel:// URL")
    parts = urllib.parse.urlsplit(url)
    sentinels = _addresses(parts, "sentinel")
    options = _credentials(parts)
    path = parts.path.split("/")
    if len(path) >= 2 and path[1]:
        if not path[1].isdigit():
            raise ValueError(f"database {path[1]!r} is not a number")
        options["db"] = int(path[1])
    service = path[2] if len(path) >= 3 and path[2] else None
    sentinel_options: dict[str, Any] = {}
    if scheme(url).startswith(("rediss", "valkeys")):
        options["ssl"] = sentinel_options["ssl"] = True
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key in _SENTINEL_AUTH:
            sentinel_options[_SENTINEL_AUTH[key]] = value
        elif key in _TLS_OPTIONS:
            typed: Any = value.lower() in ("1", "true", "yes") \
                if key == "ssl_check_hostname" else value
            options[key] = sentinel_options[key] = typed
        else:
            raise ValueError(f"unknown option {key!r}")
    return SentinelUrl(sentinels, service, options, sentinel_options)


def parse_cluster_url(url: str) -> ClusterUrl:
    """The nodes and connection options of a ``redis+cluster://`` URL; raises ValueError
    (without the password) when it is not one."""
    if not is_cluster(url):
        raise ValueError("not a redis+cluster:// or valkey+cluster:// URL")
    parts = urllib.parse.urlsplit(url)
    nodes = _addresses(parts, "cluster node")
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError("a Redis Cluster has no database but 0")
    options = _credentials(parts)
    if scheme(url).startswith(("rediss", "valkeys")):
        options["ssl"] = True
    return ClusterUrl(nodes, options)


def _addresses(parts: urllib.parse.SplitResult, what: str) -> list[tuple[str, int]]:
    """The HOST:PORT list of a netloc (after any credentials)."""
    addresses = []
    for address in parts.netloc.rpartition("@")[2].split(","):
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{what} {address!r} is not HOST:PORT")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def _credentials(parts: urllib.parse.SplitResult) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if parts.username:
        options["username"] = urllib.parse.unquote(parts.username)
    if parts.password:
        options["password"] = urllib.parse.unquote(parts.password)
    return options


def check_url(url: str) -> str | None:
    """None if ``url`` is a Redis URL sioctl can use, else why not, to follow the (masked) URL:
    "is not a Redis URL (...)"; no password in it."""
    name = scheme(url)
    if name not in REDIS_SCHEMES:
        return f"is not a Redis URL ({SCHEMES_TEXT})"
    if name in SENTINEL_SCHEMES:
        try:
            parse_sentinel_url(url)
        except ValueError as exc:
            return f"is not a Redis Sentinel URL: {exc}"
    if name in CLUSTER_SCHEMES:
        try:
            parse_cluster_url(url)
        except ValueError as exc:
            return f"is not a Redis Cluster URL: {exc}"
    return None
