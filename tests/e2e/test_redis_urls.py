"""The other Redis URL schemes on a real cluster: ``valkey://`` reaches the same redis-server
as ``redis://`` (redis-py serves it) and joins two workers of either engine (``start_nodes``)."""

from __future__ import annotations

from typing import Any

from tests.support.messaging import OwnRedis, clients_on_slots, inbox_for, new_tag


def test_a_valkey_url_joins_the_workers(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    assert own_redis.url.startswith("redis://")
    cluster = start_nodes("valkey://" + own_redis.url.removeprefix("redis://"))
    slots = clients_on_slots(connect, cluster)
    (a, _), (b, _) = slots[0][0], slots[1][0]
    inboxes = [inbox_for(a), inbox_for(b)]
    tag = new_tag("valkey")
    assert b.call("send_to", {"to": None, "first": 0, "n": 5, "tag": tag}, timeout=10) == 5
    for inbox in inboxes:
        assert sorted(inbox.wait(tag, 5)) == list(range(5))
    assert "Redis at valkey://" in cluster.log_text()
