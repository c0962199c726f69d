"""The registry's presence records against a real redis-server (and in memory where they
exist there): unregister's answer, peers sets, and dead workers found and taken once, with
real processes standing for the workers."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from sioctl.worker.gateway.memory_registry import MemoryRegistry
from sioctl.worker.gateway.registry import RedisRegistry, Registry
from sioctl.worker.gateway.registry_presence import Departed, WorkerId, start_time


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    yield c
    c.close()


@pytest.fixture
def prefix() -> str:
    return f"p{uuid.uuid4().hex[:8]}:gw:"


@pytest.fixture(params=["redis", "memory"])
def registry(request: pytest.FixtureRequest, prefix: str) -> Registry:
    if request.param == "memory":
        return MemoryRegistry()
    return RedisRegistry(request.getfixturevalue("client"), prefix, worker=WorkerId.here())


def test_unregister_says_whether_the_userid_lives_on(registry: Registry) -> None:
    registry.register("old", "user-u")
    registry.register("new", "user-fresh")
    assert registry.rebind("user-u", "new", take_over=True).ok
    assert registry.unregister("old") is True  # user-u lives on in "new"
    assert registry.resolve("user-u") == "new"
    assert registry.unregister("new") is False
    assert registry.resolve("user-u") is None
    assert registry.unregister("nobody") is False


def test_peers_are_recorded_both_ways(registry: Registry) -> None:
    registry.add_peers("a", "b")
    registry.add_peers("c", "a")
    assert registry.peers_of("a") == ["b", "c"]
    assert registry.peers_of("b") == ["a"]
    assert registry.peers_of("nobody") == []


@pytest.fixture
def exited() -> Callable[[], WorkerId]:
    """``exited()``: the id a worker had, of a real process of this node that has exited."""

    def make() -> WorkerId:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            start = start_time(child.pid)
            assert start is not None
        finally:
            child.kill()
            child.wait(5)
        return WorkerId(WorkerId.here().node, child.pid, start)

    return make


def test_a_dead_workers_sockets_are_found_and_taken_once(
    client: redis.Redis, prefix: str, exited: Callable[[], WorkerId]
) -> None:
    dead = exited()
    gone = RedisRegistry(client, prefix, worker=dead)
    gone.register("s1", "u1", "appOne")
    gone.register("s2", "u2")
    assert gone.rebind("u3", "s2").ok  # the index follows a rebind
    gone.unregister("s1")  # a socket that left cleanly is not in the index any more
    gone.register("s4", "u4")

    live = RedisRegistry(client, prefix, worker=WorkerId.here())
    other = RedisRegistry(client, prefix, worker=WorkerId.here())
    live.register("mine", "um")
    assert live.dead_workers() == [str(dead)]
    taken = live.take_worker(str(dead))
    assert sorted(taken, key=lambda d: d.sid) == [Departed("s2", "u3", None),
                                                  Departed("s4", "u4", None)]
    assert other.take_worker(str(dead)) == []  # one taker
    assert live.dead_workers() == []


def test_a_worker_of_another_node_is_dead_when_its_alive_key_expires(
    client: redis.Redis, prefix: str
) -> None:
    elsewhere = WorkerId("another-node", 1, "1")
    far = RedisRegistry(client, prefix, worker=elsewhere)
    far.register("s1", "u1")
    live = RedisRegistry(client, prefix, worker=WorkerId.here())
    # Pid 1 runs here, but on another node it means nothing: its alive key decides.
    assert live.dead_workers() == []
    client.delete(f"{prefix}alive:{elsewhere}")
    assert live.dead_workers() == [str(elsewhere)]
    assert live.take_worker(str(elsewhere)) == [Departed("s1", "u1", None)]
