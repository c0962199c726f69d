"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sioctl.cli import nginx
from tests.support.clients import processes_with
from tests.support.cluster import ENGINES, MESSAGING_APPS, StartCluster
from tests.support.gateway import GwClient, JsGwClient
from tests.support.messaging import OwnRedis
from tests.support.nginx import NginxServer, stream_module
from tests.support.paths import JS_DIR
from tests.support.redis_cluster import RedisClusterGroup
from tests.support.sentinel import SentinelGroup


@pytest.fixture
def base() -> Iterator[str]:
    """A short run-dir base shared by the daemons of one test (Unix socket paths are short)."""
    path = tempfile.mkdtemp(prefix="sio")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def marked() -> Iterator[tuple[dict[str, str], str]]:
    """An environment whose every descendant process can be found by the marker; those still
    alive at teardown are killed."""
    marker = f"sioctl-test-{uuid.uuid4().hex}"
    yield {**os.environ, "SIOCTL_TEST_MARKER": marker}, marker
    for pid in processes_with(marker):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server of the test's own, which it may stop and start again; stopped at
    teardown."""
    server = OwnRedis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def module_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """A Sentinel group (master, replica, three sentinels) shared by a module's tests, which
    must leave its master alive; stopped after the module."""
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture(scope="module")
def module_redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterGroup]:
    """A Redis Cluster of three masters shared by a module's tests (which must leave its
    slots where they are); stopped after the module."""
    group = RedisClusterGroup(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def client() -> Iterator[Callable[..., GwClient]]:
    """``client(source_ip)``: an unconnected GwClient, shut down after the test."""
    made: list[GwClient] = []

    def make(source_ip: str) -> GwClient:
        made.append(GwClient(source_ip))
        return made[-1]

    yield make
    for c in made:
        c.sio.shutdown()


@pytest.fixture
def js_client() -> Iterator[Callable[..., JsGwClient]]:
    """``js_client(source_ip, kind)``: an unconnected JsGwClient (``kind`` "v4" or "v2": the
    official socket.io-client of that protocol, run by node), killed after the test."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    for package in ("socket.io-client", "socket.io-client-v2"):
        assert (JS_DIR / "node_modules" / package).is_dir(), (
            f"{package} is not installed: run `npm ci --prefix tests/js`")
    made: list[JsGwClient] = []

    def make(source_ip: str, kind: str) -> JsGwClient:
        made.append(JsGwClient(source_ip, kind))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture
def start_nginx() -> Iterator[Callable[..., NginxServer]]:
    """Factory: ``start_nginx(kind, nodes)`` runs nginx with the http or stream config that
    ``sioctl nginx`` writes for those nodes; stopped at teardown."""
    started: list[NginxServer] = []

    def start(kind: str, nodes: Sequence[Any]) -> NginxServer:
        addresses = [nginx.Address("127.0.0.1", node.port) for node in nodes]
        if kind == "stream":
            module = stream_module()
            server = NginxServer(lambda listen, local: nginx.stream_config(
                addresses, listen=listen, stream_module=module, local=local))
        else:
            server = NginxServer(lambda listen, local: nginx.http_config(
                addresses, listen=listen, local=local))
        started.append(server)
        return server.start()

    yield start

    for server in started:
        server.stop()


@pytest.fixture(params=ENGINES)
def start_nodes(request: pytest.FixtureRequest,
                start_cluster: StartCluster) -> Callable[..., Any]:
    """Factory, once per engine: ``start_nodes(redis_url, transport="pubsub")`` starts a
    sioctl cluster of two workers of that engine joined through the Redis at ``redis_url``,
    serving MESSAGING_APPS[engine], and returns it once both are ready (stopped at teardown
    by ``start_cluster``)."""

    def start(redis_url: str, transport: str = "pubsub") -> Any:
        args = ["--redis-transport", transport] if transport != "pubsub" else []
        return start_cluster(MESSAGING_APPS[request.param], workers=2, redis_url=redis_url,
                             extra_args=args)

    return start
