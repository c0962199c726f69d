"""The other Redis URL schemes on a real cluster: ``valkey://`` reaches the same redis-server
as ``redis://`` (redis-py serves it), and ``rediss://`` / ``valkeys://`` a TLS-only one; each
joins two workers of either engine (``start_nodes``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.messaging import OwnRedis, clients_on_slots, inbox_for, new_tag
from tests.support.redis_parsers import hiredis_installed
from tests.support.redis_tls import TlsRedis


def broadcasts_cross(cluster: Any, connect: Any) -> None:
    """A broadcast from worker 1 reaches a client on each worker."""
    slots = clients_on_slots(connect, cluster)
    (a, _), (b, _) = slots[0][0], slots[1][0]
    inboxes = [inbox_for(a), inbox_for(b)]
    tag = new_tag("urls")
    assert b.call("send_to", {"to": None, "first": 0, "n": 5, "tag": tag}, timeout=10) == 5
    for inbox in inboxes:
        assert sorted(inbox.wait(tag, 5)) == list(range(5))


def test_a_valkey_url_joins_the_workers(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    """Each worker's boot line names the URL and redis-py's reply parser: its own in the suite
    (a plain install's), hiredis in scripts/test-hiredis.sh's run (hiredis on PYTHONPATH,
    which the workers inherit)."""
    assert own_redis.url.startswith("redis://")
    cluster = start_nodes("valkey://" + own_redis.url.removeprefix("redis://"))
    broadcasts_cross(cluster, connect)
    log = cluster.log_text()
    assert "Redis at valkey://" in log
    parser = "hiredis" if hiredis_installed() else "redis-py's own"
    booted = [line for line in log.splitlines() if "] INFO serving " in line]
    assert len(booted) == 2 and all(f", {parser} reply parser" in line
                                    for line in booted), booted


@pytest.mark.parametrize("scheme", ["rediss", "valkeys"])
def test_a_tls_url_joins_the_workers(
    tmp_path: Path, start_nodes: Any, connect: Any, scheme: str
) -> None:
    server = TlsRedis(tmp_path / "tls")
    try:
        cluster = start_nodes(server.url(scheme))
        broadcasts_cross(cluster, connect)
        assert f"Redis at {scheme}://127.0.0.1:{server.port}" in cluster.log_text()
    finally:
        server.stop()
