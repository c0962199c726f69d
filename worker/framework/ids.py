"""Custom socket ids (``io.generate_id``) that stay unique across workers and nodes, on either
engine.

With ``io.generate_id`` the app picks socket ids (a user id, say), so two clients can ask for the
same one on different workers. Targeted emits cross workers by id, so both would receive the
other's messages. Each worker therefore claims the ids it hands out in Redis: one key per
(namespace, id), owned by the worker's slot, with an expiry that the worker keeps renewing while
the socket lives.

The owner is the slot, not the process: a client whose worker died reconnects to the same slot
(sticky routing) and its replacement may take the id over at once, instead of waiting for the
dead worker's claims to expire.

What is decided here once for both engines: which id a handshake gets (:class:`CustomIds`),
the keys, scripts and expiry, and what a failed or lost claim means (:class:`ClaimsCore`).
:class:`IdClaims` makes the Redis calls with a blocking client (eventlet), :class:`AsyncIdClaims`
awaits them on ``redis.asyncio`` (the client of the asyncio manager); the servers of the two
shells (``application.FrameworkServer``, ``aio.AsyncFrameworkServer``) call them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from .core import checked_id, id_in_use

log = logging.getLogger("sioctl.app")

# A claim outlives its worker by at most this long.
CLAIM_TTL = 30.0
RENEW_EVERY = CLAIM_TTL / 3
CLAIM_TTL_MS = int(CLAIM_TTL * 1000)

# Delete a claim only if it is still ours (it may have expired and been taken since).
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# Claim an id, or renew a claim that is ours (writing it again if Redis lost it: restarted
# without its data); 0 when another slot holds it.
CLAIM_SCRIPT = """
local holder = redis.call('get', KEYS[1])
if holder ~= false and holder ~= ARGV[1] then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# A recovered socket's id is its own (its session record was taken by one restore only), so
# its claim is taken over from whichever slot held it (a worker that was killed, say).
TAKE_OVER_SCRIPT = """
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


def claim_script(take_over: bool) -> str:
    """The script that claims an id: taking it over, or only when no other slot holds it."""
    return TAKE_OVER_SCRIPT if take_over else CLAIM_SCRIPT


class CustomIds:
    """``io.generate_id`` on a ``socketio.Server`` or ``AsyncServer``.

    python-socketio asks ``eio.generate_id()`` (no arguments) for a new socket id while it
    handles a CONNECT packet; the server's ``_handle_connect`` override asks :meth:`choose`
    for the id of that handshake first, claims it, and runs python-socketio's inside
    :meth:`pending`, which hands the id to the generator (a context variable: per green thread
    on eventlet, per task on asyncio)."""

    def __init__(self, generator: Callable[[dict[str, Any]], str] | None, server: Any) -> None:
        self.generator = generator
        self._pending: ContextVar[str | None] = ContextVar("sioctl_custom_id", default=None)
        if generator is not None:
            default = server.eio.generate_id
            server.eio.generate_id = lambda: self._pending.get() or default()

    def choose(self, server: Any, eio_sid: str, namespace: str) -> tuple[str, bool]:
        """The id of this handshake and whether it is a recovered socket's own (connection
        state recovery: the id it had, not a new one). Otherwise ``io.generate_id(environ)``
        gives it; ValueError (the client's ``connect_error`` message) when it is unusable or
        connected here already."""
        assert self.generator is not None  # the servers ask only when io.generate_id is set
        restoring = getattr(server.manager, "restoring", None)
        restored = restoring(eio_sid, namespace) if callable(restoring) else None
        if restored is not None:
            return restored, True
        sid = checked_id(self.generator(server.environ.get(eio_sid, {})))
        if sid in server.manager.rooms.get(namespace, {}).get(None, {}):
            raise id_in_use(sid)
        return sid, False

    @contextmanager
    def pending(self, sid: str) -> Iterator[None]:
        """python-socketio's ``eio.generate_id()`` returns ``sid`` inside this block."""
        token = self._pending.set(sid)
        try:
            yield
        finally:
            self._pending.reset(token)

    @staticmethod
    def refusal(namespace: str, exc: Exception) -> dict[str, Any]:
        """The ``connect_error`` data of a refused id (logged)."""
        log.warning("refusing a connection to %s: %s", namespace, exc)
        return {"message": str(exc)}


class ClaimsCore:
    """The ids this worker has claimed, kept alive in the Redis of its client manager: what
    both engines decide (the calls are the subclasses')."""

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

    def _claimed(self, key: str, held: Any) -> bool:
        """The claim script answered ``held`` for ``key``: remember it (and renew it from now
        on) when it is ours."""
        if not held:
            return False
        self.claimed.add(key)
        if not self._renewing:
            self._renewing = True
            self.server.start_background_task(self._renew_forever)
        return True

    def _renew_forever(self) -> Any:
        raise NotImplementedError

    @staticmethod
    def _claim_failed(exc: Exception) -> bool:
        # Without Redis nothing crosses workers anyway; do not lock every user out too.
        log.warning("cannot claim socket id in Redis (%s); accepting it unchecked", exc)
        return True

    def _releasing(self, namespace: str, sid: str) -> str | None:
        """The key to release for ``sid``, or None when this worker holds no claim on it."""
        key = self._key(namespace, sid)
        if key not in self.claimed:
            return None
        self.claimed.discard(key)
        return key

    @staticmethod
    def _release_failed(exc: Exception) -> None:
        log.warning("cannot release socket id in Redis (%s); it expires in %gs", exc, CLAIM_TTL)

    def _renewed(self, keys: list[str], held: list[Any]) -> None:
        """The claim script answered ``held`` for ``keys``: the ones another slot holds now are
        theirs (warned once, never released)."""
        lost = [key for key, ok in zip(keys, held, strict=True) if not ok]
        if lost:
            self.claimed.difference_update(lost)
            log.warning("%d socket id claim(s) of this worker are held elsewhere now: %s",
                        len(lost), ", ".join(lost[:5]))

    @staticmethod
    def _renew_failed(keys: list[str], exc: Exception) -> None:
        log.warning("cannot renew %d socket id claim(s) in Redis: %s", len(keys), exc)


class IdClaims(ClaimsCore):
    """Socket id claims with the manager's blocking Redis client (eventlet)."""

    def claim(self, namespace: str, sid: str, take_over: bool = False) -> bool:
        """Claim ``sid`` in ``namespace``; False when another slot holds it (``take_over``:
        a recovered socket's own id, taken from whoever holds it)."""
        redis = self._redis()
        if redis is None:
            return True
        key = self._key(namespace, sid)
        try:
            held = redis.eval(claim_script(take_over), 1, key, self.owner, CLAIM_TTL_MS)
        except Exception as exc:
            return self._claim_failed(exc)
        return self._claimed(key, held)

    def release(self, namespace: str, sid: str) -> None:
        key = self._releasing(namespace, sid)
        if key is None:
            return
        try:
            self._redis().eval(RELEASE_SCRIPT, 1, key, self.owner)
        except Exception as exc:
            self._release_failed(exc)

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
            pipe = self._redis().pipeline(transaction=False)
            for key in keys:
                # Not pipe.eval: a Redis Cluster pipeline's eval() takes no script.
                pipe.execute_command("EVAL", CLAIM_SCRIPT, 1, key, self.owner, CLAIM_TTL_MS)
            held = pipe.execute()
        except Exception as exc:
            self._renew_failed(keys, exc)
            return
        self._renewed(keys, held)


class AsyncIdClaims(ClaimsCore):
    """Socket id claims awaited on the asyncio manager's ``redis.asyncio`` client."""

    async def claim(self, namespace: str, sid: str, take_over: bool = False) -> bool:
        """Claim ``sid`` in ``namespace``; False when another slot holds it (``take_over``:
        a recovered socket's own id, taken from whoever holds it)."""
        redis = self._redis()
        if redis is None:
            return True
        key = self._key(namespace, sid)
        try:
            held = await redis.eval(claim_script(take_over), 1, key, self.owner, CLAIM_TTL_MS)
        except Exception as exc:
            return self._claim_failed(exc)
        return self._claimed(key, held)

    async def release(self, namespace: str, sid: str) -> None:
        key = self._releasing(namespace, sid)
        if key is None:
            return
        try:
            await self._redis().eval(RELEASE_SCRIPT, 1, key, self.owner)
        except Exception as exc:
            self._release_failed(exc)

    async def _renew_forever(self) -> None:
        while True:
            await self.server.sleep(RENEW_EVERY)
            await self.renew()

    async def renew(self) -> None:
        """Renew this worker's claims, writing again those Redis has lost (also awaited as a
        ``when_redis_back`` hook of the asyncio manager)."""
        keys = list(self.claimed)
        if not keys:
            return
        try:
            pipe = self._redis().pipeline(transaction=False)
            for key in keys:
                # Not pipe.eval: a Redis Cluster pipeline's eval() takes no script.
                pipe.execute_command("EVAL", CLAIM_SCRIPT, 1, key, self.owner, CLAIM_TTL_MS)
            held = await pipe.execute()
        except Exception as exc:
            self._renew_failed(keys, exc)
            return
        self._renewed(keys, held)
