"""One pub/sub message read from a blocking redis-py ``PubSub``, a reply that has begun to
arrive read whole.

redis-py 8 gives ``get_message``'s timeout to the read of the reply as well as to the wait for
one (redis-py #3982, so that a half-arrived reply cannot hang a poll). The listener takes what
Redis has sent already with ``timeout=0`` (its bursts, .reading.BURST): a message cut across
two socket reads (a large one, a backlog after a pause) then raised ``TimeoutError`` in the
middle of its reply; redis-py reconnected and subscribed again, and that message and what Redis
sent meanwhile were lost (every time with hiredis as redis-py's parser, now and then with its
own: ``tests/bench/partial_reply_probe.py``). :func:`whole_message` waits for a reply at most
``timeout``, as before, and reads one that has begun without a time limit of its own, as
redis-py before 8 did: the connection's health checks and TCP keepalive bound it (``client_
options``), and a failed read raises to the reader, which subscribes again and says so.

``redis.asyncio``'s reads are not affected (the probe), and its readers keep ``get_message``.
"""

from __future__ import annotations

from typing import Any


def whole_message(pubsub: Any, ignore_subscribe_messages: bool = False,
                  timeout: float = 0.0) -> Any:
    """What ``pubsub.get_message(ignore_subscribe_messages, timeout)`` answers (a message, a
    (un)subscribe confirmation unless ignored, or None when nothing came within ``timeout``
    seconds), with a reply that has begun to arrive read whole (see the module)."""
    connection = pubsub.connection
    if connection is None or not pubsub.subscribed:
        return pubsub.get_message(ignore_subscribe_messages=ignore_subscribe_messages,
                                  timeout=timeout)
    pubsub.check_health()
    if not connection.can_read(timeout=timeout):
        return None
    response = pubsub.parse_response(block=True)
    if not response:
        return None
    return pubsub.handle_message(response, ignore_subscribe_messages)
