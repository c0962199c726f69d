"""The Redis URLs sioctl accepts (cluster/redis_urls.py) and the clients they become
(worker/redis_clients.py), and what a boot that cannot reach them says
(worker/redis_setup.failure), checked without a Redis server."""

from __future__ import annotations

import pytest
import redis.asyncio.sentinel
import redis.sentinel
from redis.asyncio.sentinel import MasterNotFoundError as AsyncMasterNotFoundError
from redis.sentinel import MasterNotFoundError
from socketio.redis_manager import parse_redis_sentinel_url

from sioctl.cluster.redis_urls import (
    check_url,
    is_cluster,
    is_sentinel,
    parse_cluster_url,
    parse_sentinel_url,
    redis_py_url,
)
from sioctl.cluster.settings import check_redis_url, mask_url
from sioctl.worker.redis_clients import new_asyncio, new_blocking
from sioctl.worker.redis_cluster import registry_prefix, tagged
from sioctl.worker.redis_setup import failure

SENTINEL_URLS = [
    "redis+sentinel://127.0.0.1:26379,127.0.0.2:26380,localhost:26381/2/mymaster",
    "valkey+sentinel://:secret@h1:1,h2:2/0/svc",
    "redis+sentinel://user:secret@h1:1/3",
    "redis+sentinel://h1:1",
    "redis+sentinel://h1:1/",
]


@pytest.mark.parametrize("url", SENTINEL_URLS)
def test_sentinel_urls_read_as_python_socketio_reads_them(url: str) -> None:
    sentinels, service, options = parse_redis_sentinel_url(url)
    parsed = parse_sentinel_url(url)
    assert (parsed.sentinels, parsed.service, parsed.options) == (sentinels, service, options)
    assert check_url(url) is None


@pytest.mark.parametrize("url", [
    "redis://h:1/0", "rediss://:pw@h:1/0", "valkey://h:1", "valkeys://h:1/2", "unix:///tmp/r.sock",
    "REDIS://h:1",
])
def test_plain_urls_are_accepted(url: str) -> None:
    assert check_url(url) is None and check_redis_url(url) is None


@pytest.mark.parametrize(("url", "reason"), [
    ("http://user:secret@host/", "is not a Redis URL"),
    ("redis+sentinel://:secret@h1,h2:2/0/s", "sentinel 'h1' is not HOST:PORT"),
    ("redis+sentinel://:secret@h1:1/zero/s", "database 'zero' is not a number"),
])
def test_bad_urls_say_why_without_the_password(url: str, reason: str) -> None:
    message = check_redis_url(url)
    assert message is not None and reason in message and "secret" not in message


def test_valkey_schemes_become_redis_py_schemes() -> None:
    assert redis_py_url("valkey://h:1/0") == "redis://h:1/0"
    assert redis_py_url("valkeys://:pw@h:1/0") == "rediss://:pw@h:1/0"
    assert redis_py_url("redis://valkey:1/0") == "redis://valkey:1/0"
    client = new_blocking("valkeys://h:7/3")
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("h", 7, 3)
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"


def test_sentinel_masks_its_password() -> None:
    assert mask_url("redis+sentinel://u:secret@h1:1,h2:2/0/s") == "redis+sentinel://u:***@h1:1,h2:2/0/s"


@pytest.mark.parametrize("make", [new_blocking, new_asyncio])
def test_a_sentinel_url_makes_a_client_of_the_service_master(make) -> None:  # type: ignore[no-untyped-def]
    client = make("redis+sentinel://:secret@127.0.0.1:1,127.0.0.1:2/4", "chan",
                  socket_connect_timeout=1.5, max_connections=7)
    pool = client.connection_pool
    assert isinstance(pool, (redis.sentinel.SentinelConnectionPool,
                             redis.asyncio.sentinel.SentinelConnectionPool))
    # No service in the URL: the channel, as python-socketio's RedisManager does.
    assert pool.service_name == "chan" and pool.max_connections == 7
    assert pool.connection_kwargs["db"] == 4 and pool.connection_kwargs["password"] == "secret"
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [1, 2]
    # The sentinels get the socket options, not the master's password.
    assert sentinels[0].connection_pool.connection_kwargs.get("password") is None
    assert sentinels[0].connection_pool.connection_kwargs["socket_connect_timeout"] == 1.5


def test_boot_failures_are_one_short_line_without_the_password() -> None:
    url = "redis+sentinel://:secret@127.0.0.1:1,127.0.0.1:2/0/svc"
    many = "No master found for 'svc' : <redis.client.Redis(... password=secret ...)> - x"
    for error in (MasterNotFoundError(many), AsyncMasterNotFoundError(many)):
        assert failure(error, url) == "No master found for 'svc' by the sentinels"
    assert failure(TimeoutError(), url) == "no answer in time"
    assert failure(ConnectionError("bad secret\nmore"), url) == "bad ***"


@pytest.mark.parametrize(("url", "nodes", "options"), [
    ("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", [("127.0.0.1", 7000), ("127.0.0.1", 7001)],
     {}),
    ("valkey+cluster://:secret@h1:1/", [("h1", 1)], {"password": "secret"}),
    ("rediss+cluster://user:pw@h1:1,[::1]:2/0", [("h1", 1), ("::1", 2)],
     {"username": "user", "password": "pw", "ssl": True}),
    ("valkeys+cluster://h1:1", [("h1", 1)], {"ssl": True}),
])
def test_cluster_urls(url: str, nodes: list[tuple[str, int]], options: dict[str, object]) -> None:
    parsed = parse_cluster_url(url)
    assert (parsed.nodes, parsed.options) == (nodes, options)
    assert is_cluster(url) and not is_sentinel(url) and check_url(url) is None


@pytest.mark.parametrize(("url", "reason"), [
    ("redis+cluster://:secret@h1,h2:2", "cluster node 'h1' is not HOST:PORT"),
    ("redis+cluster://:secret@h1:1/3", "a Redis Cluster has no database but 0"),
])
def test_bad_cluster_urls_say_why_without_the_password(url: str, reason: str) -> None:
    message = check_redis_url(url)
    assert message is not None and reason in message and "secret" not in message
    assert mask_url(url).count("secret") == 0


def test_cluster_key_names_share_a_slot_only_on_a_cluster() -> None:
    assert tagged("socketio") == "{socketio}" and tagged("{socketio}") == "{socketio}"
    assert registry_prefix("redis://h:1/0", "socketio") == "socketio:gw:"
    assert registry_prefix("redis+cluster://h:1", "socketio") == "{socketio:gw}:"
    assert registry_prefix(None, "chan") == "chan:gw:"


@pytest.mark.parametrize("make", [new_blocking, new_asyncio])
def test_sentinels_with_their_own_password_and_tls(make) -> None:  # type: ignore[no-untyped-def]
    """``rediss+sentinel://``: TLS to the sentinels and the master; ``sentinel_password``
    (sioctl's query option; python-socketio takes ``sentinel_kwargs``) for the sentinels only,
    the user info's password for the master only."""
    url = ("rediss+sentinel://:master-pw@127.0.0.1:1,127.0.0.1:2/0/svc?sentinel_password=s-pw"
           "&ssl_ca_certs=/tmp/ca.pem&ssl_cert_reqs=none")
    assert check_url(url) is None
    client = make(url, socket_connect_timeout=1.5)
    pool = client.connection_pool
    assert pool.connection_kwargs["password"] == "master-pw"
    assert pool.connection_class.__name__.startswith("SentinelManagedSSL")
    assert pool.connection_kwargs["ssl_ca_certs"] == "/tmp/ca.pem"
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool
    assert sentinel.connection_kwargs["password"] == "s-pw"
    assert sentinel.connection_kwargs["socket_connect_timeout"] == 1.5
    assert sentinel.connection_kwargs["ssl_cert_reqs"] == "none"
    assert sentinel.connection_class.__name__ == "SSLConnection"
    assert "s-pw" not in mask_url(url) and "master-pw" not in mask_url(url)


def test_a_sentinel_url_refuses_unknown_options() -> None:
    message = check_redis_url("redis+sentinel://:secret@h1:1/0/s?password=x")
    assert message is not None and "unknown option 'password'" in message
    assert "secret" not in message
