"""OwnerCache (worker/messaging/owners.py): what it remembers, for how long, how much."""

from __future__ import annotations

from sioctl.worker.messaging.owners import OwnerCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_owners_are_remembered_until_their_ttl() -> None:
    clock = Clock()
    cache = OwnerCache(owned_ttl=10, unknown_ttl=2, clock=clock)
    assert cache.get("/", "a") == (False, None)
    cache.put("/", "a", "worker-1")
    clock.now += 9.9
    assert cache.get("/", "a") == (True, "worker-1")
    clock.now += 0.2
    assert cache.get("/", "a") == (False, None)
    assert len(cache) == 0


def test_nobody_is_remembered_for_less_time() -> None:
    clock = Clock()
    cache = OwnerCache(owned_ttl=10, unknown_ttl=2, clock=clock)
    cache.put("/", "room", None)
    assert cache.get("/", "room") == (True, None)
    clock.now += 2.1
    assert cache.get("/", "room") == (False, None)


def test_namespaces_are_apart_and_forget_drops_one() -> None:
    cache = OwnerCache()
    cache.put("/", "a", "w1")
    cache.put("/chat", "a", "w2")
    cache.forget("/", "a")
    assert cache.get("/", "a") == (False, None)
    assert cache.get("/chat", "a") == (True, "w2")


def test_least_recently_used_go_first() -> None:
    cache = OwnerCache(max_entries=2)
    cache.put("/", "a", "w1")
    cache.put("/", "b", "w1")
    assert cache.get("/", "a")[0]  # a is now the most recent
    cache.put("/", "c", "w1")
    assert [cache.get("/", sid)[0] for sid in "abc"] == [True, False, True]
