"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sioctl.cli import nginx
from tests.support.cluster import ENGINES, StartCluster
from tests.support.gateway import GwClient
from tests.support.messaging import OwnRedis
from tests.support.nginx import NginxServer, stream_module
from tests.support.uvicorn_nodes import UvicornNodes


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server of the test's own, which it may stop and start again; stopped at
    teardown."""
    server = OwnRedis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


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


# The messaging tests run on both ENGINES: sioctl's eventlet workers, and socketio.AsyncServer
# apps on sioctl's asyncio manager (served by uvicorn until the asyncio worker engine does).
@pytest.fixture(params=ENGINES)
def start_nodes(request: pytest.FixtureRequest, start_cluster: StartCluster,
                tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Factory, once per engine: ``start_nodes(redis_url, transport="pubsub")`` starts two
    workers joined through the Redis at ``redis_url`` and returns them once both listen.

    eventlet: a sioctl cluster of 2 workers serving tests/apps/messaging.py; asyncio: two
    uvicorn processes serving its twin tests/apps/async_messaging.py
    (tests/support/uvicorn_nodes.py).
    Either has ``url_of(slot)``, ``log_text()``, ``worker_pids()``. Stopped at teardown, which
    fails if a process has to be killed or outlives it."""
    started: list[UvicornNodes] = []

    def start(redis_url: str, transport: str = "pubsub") -> Any:
        args = ["--redis-transport", transport] if transport != "pubsub" else []
        if request.param == "eventlet":
            return start_cluster("tests.apps.messaging:sio", workers=2, redis_url=redis_url,
                                 extra_args=args)
        nodes = UvicornNodes(redis_url, tmp_path, transport=transport)
        started.append(nodes)
        return nodes.start()

    yield start

    for nodes in started:
        stubborn = nodes.stop()
        assert not stubborn, (f"uvicorn nodes did not stop on SIGTERM: {stubborn}\n"
                              f"{nodes.log_text()[-3000:]}")
