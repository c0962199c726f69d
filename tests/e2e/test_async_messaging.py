"""sioctl's asyncio Redis manager (worker/messaging/async_manager.py) where it has no eventlet
twin to share a test with: its publisher in process against a real Redis, and the
``when_redis_back`` hooks, plain and coroutine functions, on sioctl's asyncio workers. The
guarantees both engines give are tested once for both (``start_nodes``): test_messaging.py,
test_messaging_loss.py, test_messaging_streams.py, test_global_queries.py."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis

from sioctl.worker.messaging.async_publisher import AsyncPublisher
from tests.support.clients import ips_for_slot, wait_until
from tests.support.cluster import MESSAGING_APPS
from tests.support.messaging import OwnRedis


def test_a_full_queue_drops_the_oldest_and_the_rest_goes_out_when_redis_is_back(
    own_redis: OwnRedis, caplog: Any
) -> None:
    """Redis is away: commands queue up to max_queue, the oldest beyond it are dropped
    (counted, said once); once Redis is back, what was kept is sent, in order."""
    url = own_redis.url
    own_redis.stop()

    async def scenario() -> tuple[AsyncPublisher, list[Any]]:
        publisher = AsyncPublisher(lambda: aioredis.Redis.from_url(url),
                                   lambda fn: asyncio.ensure_future(fn()),
                                   logging.getLogger("test.publisher"), max_queue=5)
        publisher.start()
        for i in range(8):
            publisher.command("rpush", "kept", i)
        for _ in range(100):  # up to 10 s: the publisher tries, fails, keeps the queue
            if publisher.stats.outages:
                break
            await asyncio.sleep(0.1)
        assert publisher.stats.outages == 1 and not publisher.stats.connected
        own_redis.start()
        for _ in range(200):  # up to 20 s: RETRY_MAX, then SETTLE after the outage
            if not publisher.queue:
                break
            await asyncio.sleep(0.1)
        client = aioredis.Redis.from_url(url)
        kept = await client.lrange("kept", 0, -1)
        await client.aclose()
        publisher.task.cancel()
        await publisher.close()
        return publisher, kept

    with caplog.at_level(logging.INFO, logger="test.publisher"):
        publisher, kept = asyncio.run(scenario())
    assert [int(v) for v in kept] == [3, 4, 5, 6, 7]
    assert (publisher.stats.dropped, publisher.stats.delayed, publisher.stats.published) == (
        3, 5, 5)
    lines = [r.getMessage() for r in caplog.records]
    assert sum("queue full" in line for line in lines) == 1, lines
    assert sum("Redis is back after" in line for line in lines) == 1, lines


def test_when_redis_back_hooks_run_plain_and_async(
    own_redis: OwnRedis, start_cluster: Any, connect: Any
) -> None:
    """After a Redis restart each asyncio worker runs its when_redis_back hooks once: a plain
    function and a coroutine function (the gateway registry and socket id claims use them)."""
    cluster = start_cluster(MESSAGING_APPS["asyncio"], workers=2, redis_url=own_redis.url)
    clients = [connect(cluster, ips_for_slot(slot, 2)[0], ("websocket",)) for slot in (0, 1)]
    assert [c.call("manager_stats")["slot"] for c in clients] == [0, 1]
    assert [c.call("manager_stats")["redis_back"] for c in clients] == [
        {"plain": 0, "async": 0}] * 2
    own_redis.stop()
    own_redis.start()
    for client in clients:
        wait_until(lambda c=client: c.call("manager_stats")["redis_back"]
                   == {"plain": 1, "async": 1}, 10, what="the hooks")
    assert "Traceback" not in cluster.log_text()


def test_a_blocking_plain_hook_does_not_hold_the_loop(
    own_redis: OwnRedis, start_cluster: Any, connect: Any
) -> None:
    """A plain when_redis_back hook that blocks (until the test releases it) runs off the
    loop: while it waits, the worker keeps answering and its coroutine hook has run."""
    cluster = start_cluster(MESSAGING_APPS["asyncio"], workers=1, redis_url=own_redis.url)
    client = connect(cluster, ips_for_slot(0, 1)[0], ("websocket",))
    assert client.call("hold_redis_back") == {"entered": False}
    own_redis.stop()
    own_redis.start()
    # Each of these calls is answered by the loop while the plain hook holds its thread.
    wait_until(lambda: client.call("hold_redis_back", timeout=10)["entered"], 10,
               what="the hook's wait")
    wait_until(lambda: client.call("manager_stats")["redis_back"]["async"] == 1, 10,
               what="the coroutine hook")
    assert client.call("manager_stats")["redis_back"] == {"plain": 0, "async": 1}
    client.call("hold_redis_back", True)
    wait_until(lambda: client.call("manager_stats")["redis_back"]
               == {"plain": 1, "async": 1}, 10, what="the released hook")
    assert "Traceback" not in cluster.log_text()
