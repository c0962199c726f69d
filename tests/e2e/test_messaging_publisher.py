"""The publisher's batches (worker/messaging/publisher.py, async_publisher.py: one kept
connection, each batch written at once and its answers read back), on a real redis-server, in
process, both shells: a reply error is one command's answer and the rest of its batch goes
through, a PUBLISH nobody hears is reported as unheard, and after the connection is killed
the next commands go out on a new one, once each and in order. The eventlet shell runs here
on plain threads (the same code; eventlet makes its socket green)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from sioctl.worker.messaging.async_publisher import AsyncPublisher
from sioctl.worker.messaging.publisher import Publisher
from tests.support.clients import wait_until
from tests.support.cluster import ENGINES
from tests.support.messaging import OwnRedis

LOG = logging.getLogger("test.publisher")


def _kill_connections(url: str) -> None:
    """Close every other client's connection (here: the publisher's) from Redis's side."""
    client = redis.Redis.from_url(url)
    try:
        wait_until(lambda: client.client_kill_filter(_type="normal", skipme=True) >= 1, 10,
                   what="the publisher's connection to be killed")
    finally:
        client.close()


def _order(url: str) -> list[int]:
    client = redis.Redis.from_url(url)
    try:
        return [int(v) for v in client.lrange("order", 0, -1)]
    finally:
        client.close()


def _first_batch(publisher: Any) -> None:
    publisher.command("rpush", "order", 1)
    publisher.command("incr", "text")  # answered "value is not an integer"
    publisher.publish("nobody-listens", "m1")
    publisher.command("rpush", "order", 2)


def _after_kill(publisher: Any) -> None:
    publisher.command("rpush", "order", 3)
    publisher.command("rpush", "order", 4)


def _eventlet_shell(url: str, unheard: Callable[[str, Any], None]) -> dict[str, Any]:
    publisher = Publisher(
        lambda: redis.Redis.from_url(url),
        lambda fn: threading.Thread(target=fn, daemon=True).start(),
        time.sleep, threading.Event, LOG, unheard=unheard)
    publisher.start()
    _first_batch(publisher)
    wait_until(lambda: not publisher.queue, 10, what="the first batch to be answered")
    before_kill = (publisher.stats.outages, publisher.stats.published)
    _kill_connections(url)
    _after_kill(publisher)
    wait_until(lambda: not publisher.queue, 20, what="the commands after the kill")
    return {"before_kill": before_kill, "outages": publisher.stats.outages}


async def _until(done: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _asyncio_shell(url: str, unheard: Callable[[str, Any], None]) -> dict[str, Any]:
    publisher = AsyncPublisher(lambda: aioredis.Redis.from_url(url),
                               lambda fn: asyncio.ensure_future(fn()), LOG, unheard=unheard)
    publisher.start()
    try:
        _first_batch(publisher)
        await _until(lambda: not publisher.queue, 10, "the first batch to be answered")
        before_kill = (publisher.stats.outages, publisher.stats.published)
        await asyncio.to_thread(_kill_connections, url)
        _after_kill(publisher)
        await _until(lambda: not publisher.queue, 20, "the commands after the kill")
        return {"before_kill": before_kill, "outages": publisher.stats.outages}
    finally:
        publisher.task.cancel()
        await publisher.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_batch_answers_each_command_and_survives_a_killed_connection(
    own_redis: OwnRedis, engine: str
) -> None:
    url = own_redis.url
    seed = redis.Redis.from_url(url)
    seed.set("text", "not a number")
    seed.close()
    unheard: list[tuple[str, Any]] = []

    def heard_by_nobody(channel: str, data: Any) -> None:
        unheard.append((channel, data))

    if engine == "eventlet":
        result = _eventlet_shell(url, heard_by_nobody)
    else:
        result = asyncio.run(_asyncio_shell(url, heard_by_nobody))
    # The reply error was that command's answer: no outage, all four counted as sent.
    assert result["before_kill"] == (0, 4)
    assert unheard == [("nobody-listens", "m1")]
    # After the kill: one outage, and the commands went out on a new connection, once each.
    assert result["outages"] == 1
    assert _order(url) == [1, 2, 3, 4]
