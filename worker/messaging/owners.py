"""A worker's memory of which worker owns which socket, so that a targeted emit need not ask
Redis every time.

Looking the owner up in Redis was a blocking round trip on every emit to a socket of another
worker (and on every emit to a room, whose name is looked up the same way and found nowhere):
the largest cost of a targeted emit in the benchmarks (docs/benchmarks.md). The answers are
kept for a short while:

- "owned by worker W" for ``OWNED_TTL`` s. A socket id normally lives on one worker, but with
  ``io.generate_id`` a client may come back with the same id on another worker; a message then
  sent to W on the strength of a stale entry is not lost: W passes a targeted message for a
  socket it does not have to the shared channel
  (``SioctlManagerBase._passed_on_misdelivered``); a dead W
  hears nothing, so pub/sub's receiver count of 0, or in streams mode the owner record checked
  by the XADD itself (``outbox.GUARDED_XADD``), sends it there instead.
- "nobody" (a room name, or a socket not connected yet) for ``UNKNOWN_TTL`` s; such a message
  goes to the shared channel, which reaches every worker, so a stale entry only costs traffic.

:func:`rewrite_flow` is the other side: a worker's own records written again at once, back on
a Redis that may have lost them, for either engine's manager.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from sioctl.worker.flow import Flow, call

OWNED_TTL = 10.0
UNKNOWN_TTL = 2.0
MAX_ENTRIES = 50_000


class OwnerCache:
    """Recent owner lookups, bounded in age and in number (least recently used go first)."""

    def __init__(
        self,
        owned_ttl: float = OWNED_TTL,
        unknown_ttl: float = UNKNOWN_TTL,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.owned_ttl = owned_ttl
        self.unknown_ttl = unknown_ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[str | None, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, namespace: str, sid: str) -> tuple[bool, str | None]:
        """``(True, owner)`` when a fresh answer is known (owner None: nobody), else
        ``(False, None)``."""
        key = (namespace, sid)
        entry = self._entries.get(key)
        if entry is None or entry[1] <= self._clock():
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return False, None
        self._entries.move_to_end(key)
        self.hits += 1
        return True, entry[0]

    def put(self, namespace: str, sid: str, owner: str | None) -> None:
        """Remember Redis's answer for ``sid`` (None: no worker owns it)."""
        ttl = self.owned_ttl if owner is not None else self.unknown_ttl
        key = (namespace, sid)
        self._entries[key] = (owner, self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, namespace: str, sid: str) -> None:
        """Drop what is known of ``sid`` (it connected or left here, so the answer changed)."""
        self._entries.pop((namespace, sid), None)

    def __len__(self) -> int:
        return len(self._entries)


def rewrite_flow(client: Any, records: list[tuple[Any, ...]],
                 logger: logging.Logger) -> Flow[bool]:
    """A flow (sioctl.worker.flow: the eventlet manager runs it, the asyncio one awaits it)
    that writes the owner ``records`` (their SET commands) in one pipeline of ``client``
    (blocking or redis.asyncio): whether they were written.

    Tried twice: back from a Redis restart, the pipeline takes a pooled connection that the
    restart closed, found closed only when used ("Connection closed by server": redis.asyncio;
    the blocking client under eventlet with hiredis as its parser, whose pool check cannot see
    the closed socket), and the pool hands that connection out again, reconnected. Failing
    twice is logged; the records then wait for the next refresh (OWNER_REFRESH, 20 s)."""
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for record in records:
            pipe.execute_command(*record)
        try:
            yield call(pipe.execute)
            return True
        except RedisError as exc:
            if attempt == 2:
                logger.warning("cannot record socket owners yet (%s); retrying later", exc)
    return False
