"""The pub/sub listener (redis-py's PubSub, its parser hiredis when installed: issue 19), on a
real redis-server, in process, both shells: a quiet subscription is PINGed by redis-py's
health check and stays, and a message published afterwards comes through. The eventlet shell
runs here on plain sockets (the same code; eventlet makes its socket green). In both RESP2
(what the managers' listeners speak: ``base.listener_options``) and RESP3 (redis-py 8's
default, and what an app that names ``protocol=3`` in its Redis options gets)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from sioctl.worker.messaging.async_readers import AsyncListener
from sioctl.worker.messaging.base import listener_options
from sioctl.worker.messaging.listener import Listener
from tests.support.messaging import OwnRedis

LOG = logging.getLogger("test.listener")
# Reads (each at most POLL = 1 s) before giving up on what a step waits for.
READS = 12


def listener_steps(engine: str, url: str, protocol: int | None = None) -> tuple[Any, Any]:
    """(open(), read()) of a listener of ``engine`` on ``url``, with a 1 s health check and
    the managers' listener options (``protocol``: instead of theirs), as plain calls (the
    asyncio shell's run to completion on a loop of the test's own)."""
    extra: dict[str, Any] = {"health_check_interval": 1}
    if protocol is not None:
        extra["protocol"] = protocol
    options = listener_options(url, extra)
    if engine == "eventlet":
        sync = Listener(lambda: redis.Redis.from_url(url, **options),
                        ["chan"], time.sleep, LOG)

        def open_sync() -> None:
            sync._conn = sync._open()

        return open_sync, sync._read
    loop = asyncio.new_event_loop()
    listener = AsyncListener(lambda: aioredis.Redis.from_url(url, **options),
                             ["chan"], asyncio.sleep, LOG)

    async def open_async() -> None:
        listener._conn = await listener._open()

    return (lambda: loop.run_until_complete(open_async()),
            lambda: loop.run_until_complete(listener._read()))


@pytest.mark.parametrize("protocol", [None, 3])
@pytest.mark.parametrize("engine", ["eventlet", "asyncio"])
def test_a_quiet_subscription_is_pinged_and_kept(own_redis: OwnRedis, engine: str,
                                                 protocol: int | None) -> None:
    open_, read = listener_steps(engine, own_redis.url, protocol)
    admin = redis.Redis.from_url(own_redis.url)
    open_()
    subscribers = [c for c in admin.client_list() if int(c.get("sub", 0))]
    assert [c["resp"] for c in subscribers] == [str(protocol or 2)]
    for n in range(READS):  # the SUBSCRIBE's confirmation, then 3 s and more of quiet
        assert read() == []
        if n >= 2 and admin.info("commandstats").get("cmdstat_ping", {}).get("calls", 0):
            break
    assert admin.info("commandstats")["cmdstat_ping"]["calls"] >= 1
    admin.publish("chan", b'{"n": 1}')
    got: list[Any] = []
    for _ in range(READS):
        got += read()
        if got:
            break
    assert got == [("chan", b'{"n": 1}')]
    admin.close()
