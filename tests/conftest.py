"""Fixtures shared by the tests: a real redis-server and real sioctl clusters.

Only fixtures live here; the helpers they are built on (``Cluster``, ``module_cluster``,
``run_sioctl``, the clients) are in tests/support and are imported from there, never from a
conftest. Where a new test goes: tests/README.md.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sioctl.cluster.redis_server import RedisServer
from tests.support.certificates import self_signed
from tests.support.clients import BoundClient, make_client
from tests.support.cluster import (
    CHAT_APPS,
    ENGINES,
    SHARED_REDIS,
    Cluster,
    StartCluster,
    run_sioctl,
)
from tests.support.ports import free_port


@pytest.fixture(name="run_sioctl")
def run_sioctl_fixture() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_sioctl(*args, env=None, timeout=60)``: run a sioctl command to completion."""
    return run_sioctl


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real redis-server on a free 127.0.0.1 port, shared by the whole session (by one
    xdist worker's tests under ``-n``: each worker runs a session of its own)."""
    server = RedisServer(
        str(tmp_path_factory.mktemp("redis")), unix_socket=False, port=free_port()
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1: (certfile, keyfile); the test is skipped
    without openssl."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module", params=ENGINES)
def module_engine(request: pytest.FixtureRequest) -> str:
    """The engine of a module-scoped cluster fixture, each in turn: a module whose clusters
    depend on it runs every test on both engines (the apps through ``app_on``)."""
    return str(request.param)


@pytest.fixture
def engine() -> str:
    """The worker engine of the clusters a test starts: eventlet, unless the test parametrizes
    it (``@pytest.mark.parametrize("engine", ENGINES)``) to run on both."""
    return "eventlet"


@pytest.fixture
def start_cluster(
    request: pytest.FixtureRequest, tmp_path: Path, engine: str
) -> Iterator[StartCluster]:
    """Factory: ``start_cluster(app=CHAT_APPS[engine], workers=2, redis_url=SHARED_REDIS,
    extra_args=(), env={})`` starts a cluster and returns it once every worker is ready.
    An app directory started on the asyncio engine gets ``-k asyncio`` (unless -k is given).

    ``redis_url=None`` lets sioctl choose (in-memory or its embedded redis-server). Every
    cluster is stopped at teardown, which fails if any of its worker processes survives.
    """
    clusters: list[Cluster] = []

    def start(
        app: str | None = None,
        workers: int = 2,
        redis_url: str | None = SHARED_REDIS,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Cluster:
        if redis_url == SHARED_REDIS:
            redis_url = request.getfixturevalue("redis_url")
        app = app or CHAT_APPS[engine]
        if engine == "asyncio" and os.path.isdir(app) and "-k" not in extra_args:
            # An app directory of plain functions is eventlet's under auto; the asyncio
            # engine serves it too when named.
            extra_args = ["-k", "asyncio", *extra_args]
        cluster = Cluster(app, workers, redis_url, extra_args, env or {}, tmp_path)
        clusters.append(cluster)
        if wait:
            cluster.start()
        return cluster

    yield start

    leftovers: dict[str, list[int]] = {}
    for cluster in clusters:
        survivors = cluster.stop()
        if survivors:
            leftovers[cluster.title] = survivors
    assert not leftovers, f"worker processes outlived their master: {leftovers}"


@pytest.fixture
def connect(start_cluster: StartCluster) -> Iterator[Callable[..., Any]]:
    """Factory: ``connect(cluster_or_url, source_ip, transports=("polling", "websocket"),
    **client_kwargs)`` returns a connected clients.BoundClient; all are shut down at teardown,
    before the clusters stop (this fixture depends on start_cluster)."""
    made: list[BoundClient] = []

    def connect(
        target: Cluster | str,
        source_ip: str,
        transports: Sequence[str] = ("polling", "websocket"),
        **kwargs: Any,
    ) -> BoundClient:
        url = target.url if isinstance(target, Cluster) else target
        client = make_client(source_ip, transports, **kwargs)
        made.append(client)
        client.connect(url)
        return client

    yield connect

    for client in made:
        with contextlib.suppress(Exception):
            client.shutdown()
