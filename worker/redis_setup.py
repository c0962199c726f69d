"""Join the user's socketio.Server to the other workers through Redis: check that Redis answers,
install and start sioctl's client manager (worker/messaging), wait until it has subscribed.

Not to be confused with ``worker/messaging/manager.py``, the manager class itself.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import redis.utils
import socketio
from redis.asyncio.sentinel import MasterNotFoundError as AsyncMasterNotFoundError
from redis.sentinel import MasterNotFoundError

from sioctl.cluster.settings import MASK, mask_url
from sioctl.worker.errors import BootError
from sioctl.worker.messaging.fanout import FanoutManager
from sioctl.worker.messaging.manager import SioctlRedisManager
from sioctl.worker.redis_clients import MAX_CONNECTIONS, new_blocking

PING_TIMEOUT = 3.0
# How long a new worker waits for its Redis listener to subscribe before it reports ready.
SUBSCRIBE_TIMEOUT = 5.0
# redis-py 8 lowered the default pool limit to 100 connections; RedisManager then fails under
# 100+ concurrent emits ("Too many connections") and drops messages. Restore the old,
# effectively unlimited pool (connections are only opened when that many emits overlap).
REDIS_MAX_CONNECTIONS = MAX_CONNECTIONS


def check_redis(url: str, timeout: float = PING_TIMEOUT, channel: str = "socketio") -> None:
    """Ping the Redis at ``url`` (the master of a Sentinel URL, whose service defaults to
    ``channel``); raises BootError naming the masked url and the reason."""
    try:
        client = new_blocking(url, channel, socket_connect_timeout=timeout,
                              socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        raise BootError(f"cannot reach Redis at {mask_url(url)}: {failure(exc, url)}") from exc


def install_manager(
    server: socketio.Server,
    redis_url: str | None,
    redis_channel: str,
    logger: logging.Logger,
    transport: str = "pubsub",
    stream_maxlen: int = 10_000,
    recovery_window: float = 0.0,
) -> str:
    """Give ``server`` its client manager and start it; returns a description for the log.

    With a Redis url the server gets sioctl's Redis manager (pub/sub, or Redis Streams when
    ``transport`` is "streams"), unless the app chose its own manager
    (anything but the default in-memory socketio.Manager), which is kept. The manager is
    initialized now rather than on the first connection, so its Redis listener already runs
    when the first client arrives. ``recovery_window`` > 0 turns connection state recovery
    on (sioctl's manager only; said in the log otherwise). Raises BootError when Redis cannot
    be reached.
    """
    description = "in-memory manager"
    if type(server.manager) is not socketio.Manager:
        description = f"the app's own {type(server.manager).__name__}"
    elif redis_url:
        check_redis(redis_url, channel=redis_channel)
        manager = SioctlRedisManager(
            redis_url,
            channel=redis_channel,
            logger=logger,
            redis_options={"max_connections": REDIS_MAX_CONNECTIONS},
            transport=transport,
            stream_maxlen=stream_maxlen,
        )
        if recovery_window > 0:
            manager.enable_recovery(recovery_window)
        server.manager = manager
        manager.set_server(server)
        server.manager_initialized = False
        description = describe_redis(redis_url, redis_channel, transport, recovery_window)
    if type(server.manager) is socketio.Manager:
        # The in-memory manager, with the local delivery of sioctl's (the per-recipient work
        # of a fan-out done once).
        server.manager.__class__ = FanoutManager
    if recovery_window > 0 and not isinstance(server.manager, SioctlRedisManager):
        logger.warning("connection state recovery is off: it needs sioctl's Redis manager "
                       "(--redis, or more than one worker), not the %s", description)
    if not server.manager_initialized:
        server.manager_initialized = True
        try:
            server.manager.initialize()
        except Exception as exc:
            raise BootError(f"cannot start the client manager ({description}): {exc}") from exc
    if isinstance(server.manager, SioctlRedisManager):
        wait_until_subscribed(server, description)
    return description


def describe_redis(url: str, channel: str, transport: str, recovery_window: float) -> str:
    """What the worker's boot line (``serving APP (...)``, either engine) says of sioctl's Redis
    manager: the masked url, the channel, the transport, the recovery window when there is one,
    and redis-py's reply parser (:func:`reply_parser`)."""
    description = f"Redis at {mask_url(url)}, channel {channel!r}, {transport}"
    if recovery_window > 0:
        description += f", connection state recovery {recovery_window:g}s"
    return f"{description}, {reply_parser()}"


def reply_parser() -> str:
    """Which reply parser redis-py reads every client's replies with in this process: hiredis
    when redis-py found one it supports (``redis.utils.HIREDIS_AVAILABLE``: ``sioctl[hiredis]``
    or an app's own install; an older hiredis is ignored), else its own, in Python. Said at
    boot because nothing else tells an operator whether the extra took effect."""
    return "hiredis reply parser" if redis.utils.HIREDIS_AVAILABLE else \
        "redis-py's own reply parser"


def wait_until_subscribed(server: socketio.Server, description: str) -> None:
    """Return once the manager's listener has subscribed to its channel.

    The listener subscribes in a background task; a worker that reported ready before that
    would miss the broadcasts other workers publish in between.
    """
    deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
    while True:
        if server.manager.subscribed:
            return
        if time.monotonic() > deadline:
            raise BootError(f"the {description} listener did not subscribe within "
                            f"{SUBSCRIBE_TIMEOUT:g}s")
        server.sleep(0.01)


def failure(exc: BaseException, url: str) -> str:
    """Why reaching ``url`` failed, in one line without its password. redis-py's
    MasterNotFoundError appends the repr of every sentinel client it asked (a screenful);
    its first part names the service, and the sentinels are in the (masked) URL."""
    text = str(exc).strip()
    if isinstance(exc, (MasterNotFoundError, AsyncMasterNotFoundError)):
        text = text.split(" : ", 1)[0] + " by the sentinels"
    if not text and isinstance(exc, TimeoutError):
        text = "no answer in time"
    reason = text.splitlines()[0] if text else type(exc).__name__
    return scrub(reason, url)


def scrub(text: str, url: str) -> str:
    """``text`` with the password of ``url`` masked (a Redis error may quote the url)."""
    password = urlsplit(url).password
    return text.replace(password, MASK) if password else text
