"""Custom socket ids that stay unique across workers and nodes.

With ``io.generate_id`` the app picks socket ids (a user id, say), so two clients can ask for the
same one on different workers. Targeted emits cross workers by id, so both would receive the
other's messages. Each worker therefore claims the ids it hands out in Redis: one key per
(namespace, id), owned by the worker's slot, with an expiry that the worker keeps renewing while
the socket lives.

The owner is the slot, not the process: a client whose worker died reconnects to the same slot
(sticky routing) and its replacement may take the id over at once, instead of waiting for the
dead worker's claims to expire.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("sioctl.app")

# A claim outlives its worker by at most this long.
CLAIM_TTL = 30.0
RENEW_EVERY = CLAIM_TTL / 3

# Delete a claim only if it is still ours (it may have expired and been taken since).
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# Renew a claim that is ours, or write it again if Redis lost it (restarted without its
# data); 0 when another slot holds it now.
RENEW_SCRIPT = """
local holder = redis.call('get', KEYS[1])
if holder ~= false and holder ~= ARGV[1] then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class IdClaims:
    """The ids this worker has claimed, kept alive in the Redis of its client manager."""

    def __init__(self, server: Any, owner: str) -> None:
        self.server = server
        self.owner = owner
        self.claimed: set[str] = set()
        self._renewing = False

    def _redis(self) -> Any:
        # Only a Redis manager joins workers; with the in-memory manager the worker is alone
        # and its own check of connected ids is enough.
        return getattr(self.server.manager, "redis", None)

    def _key(self, namespace: str, sid: str) -> str:
        channel = getattr(self.server.manager, "channel", "socketio")
        return f"{channel}:ids:{namespace}:{sid}"

    def claim(self, namespace: str, sid: str) -> bool:
        """Claim ``sid`` in ``namespace``; False when another slot holds it."""
        redis = self._redis()
        if redis is None:
            return True
        key = self._key(namespace, sid)
        ttl_ms = int(CLAIM_TTL * 1000)
        try:
            if not redis.set(key, self.owner, nx=True, px=ttl_ms):
                holder = redis.get(key)
                if holder is None or holder.decode() != self.owner:
                    return False
                redis.pexpire(key, ttl_ms)
        except Exception as exc:
            # Without Redis nothing crosses workers anyway; do not lock every user out too.
            log.warning("cannot claim socket id in Redis (%s); accepting it unchecked", exc)
            return True
        self.claimed.add(key)
        self._start_renewing()
        return True

    def release(self, namespace: str, sid: str) -> None:
        key = self._key(namespace, sid)
        if key not in self.claimed:
            return
        self.claimed.discard(key)
        try:
            self._redis().eval(RELEASE_SCRIPT, 1, key, self.owner)
        except Exception as exc:
            log.warning("cannot release socket id in Redis (%s); it expires in %gs", exc,
                        CLAIM_TTL)

    def _start_renewing(self) -> None:
        if not self._renewing:
            self._renewing = True
            self.server.start_background_task(self._renew_forever)

    def _renew_forever(self) -> None:
        while True:
            self.server.sleep(RENEW_EVERY)
            self.renew()

    def renew(self) -> None:
        """Renew this worker's claims, writing again those Redis has lost (also called by the
        application as soon as the manager is back on Redis after an outage)."""
        keys = list(self.claimed)
        if not keys:
            return
        try:
            redis = self._redis()
            renew = redis.register_script(RENEW_SCRIPT)
            pipe = redis.pipeline(transaction=False)
            for key in keys:
                renew(keys=[key], args=[self.owner, int(CLAIM_TTL * 1000)], client=pipe)
            held = pipe.execute()
        except Exception as exc:
            log.warning("cannot renew %d socket id claim(s) in Redis: %s", len(keys), exc)
            return
        lost = [key for key, ok in zip(keys, held, strict=True) if not ok]
        if lost:
            self.claimed.difference_update(lost)  # theirs now: warn once, never release it
            log.warning("%d socket id claim(s) of this worker are held elsewhere now: %s",
                        len(lost), ", ".join(lost[:5]))
