"""Who is online: socket id (sid) <-> userId <-> app, for the message gateway.

Two implementations of one interface, :class:`Registry`:

- :class:`RedisRegistry` (here) shares the registry between every worker and node through Redis.
- :class:`~sioctl.worker.gateway.memory_registry.MemoryRegistry` keeps it in plain dicts, for a
  single worker without Redis.

Every entry expires by itself after ``ttl`` seconds unless :meth:`Registry.refresh` renews it,
so the clients of a worker that died vanish without anyone cleaning up after it.

Redis layout (``{prefix}`` is the caller's key prefix)::

    {prefix}client:{sid}          hash {"user": userId, "app": app}      PX ttl
                                  ("app" is absent until the socket's app is known)
    {prefix}user:{userId}         string: the sid this userId reaches    PX ttl
    {prefix}nonce:{app}:{nonce}   string "1", SET NX PX                  PX nonce ttl
    {prefix}sign:{app}:{sign}     string: who used this md5 signature    PX signature ttl
                                  first (md5_replay)

The presence records (peers sets, which worker holds which socket) are
:mod:`.registry_presence`'s, written by the same flows.

A sid is online while its client key exists. A userId is online while its user key names a sid
that is online: a user key whose socket has gone is a stale mapping, not a live user.

Each operation is written once, as a flow (:class:`RedisFlows`) that yields the pipelines it
sends (:class:`Batch`) and gets their replies back; :class:`RedisRegistry` sends them with a
blocking client (eventlet green threads, a monkey-patched redis-py), and
``async_registry.AsyncRedisRegistry`` awaits them on ``redis.asyncio`` (the asyncio engine), so
both engines share one registry in Redis. Neither starts threads or tasks of its own. Redis
failures raise :class:`RegistryError` whose message names the operation and the error class
only, never keys, passwords or URLs.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import redis

from sioctl.worker.redis_clients import queue_on

from .registry_presence import Command, Departed, PresenceFlows, WorkerId

__all__ = ["Batch", "Rebind", "RedisFlows", "RedisRegistry", "Registry", "RegistryError"]

DEFAULT_TTL = 60.0
# sids renewed per pipeline round trip by refresh(): bounds the size of one request.
_REFRESH_CHUNK = 500

_T = TypeVar("_T")


class RegistryError(Exception):
    """The registry's storage failed (Redis unreachable, timed out or refused the command)."""


@dataclass(frozen=True)
class Rebind:
    """What :meth:`Registry.rebind` did.

    ``ok``: the userId now reaches the socket. ``holder``: the other online socket the userId
    reached before: it kept the userId (``ok`` False, a claim refused) or lost it to a
    ``take_over`` (``ok`` True; the caller tells it). ``ok`` False with no holder: the socket
    itself is not online.
    """

    ok: bool
    holder: str | None = None


class Registry(Protocol):
    """Who is online. Every method raises RegistryError when the storage fails."""

    @property
    def ttl(self) -> float:
        """Seconds an entry lives unless refreshed; callers refresh well within it."""
        ...

    def register(self, sid: str, user_id: str, app: str | None = None) -> None:
        """Record a newly connected socket: ``sid`` carries ``user_id`` (and ``app`` when known);
        ``user_id`` now reaches ``sid``. Replaces whatever was recorded for ``sid`` before."""
        ...

    def set_app(self, sid: str, app: str) -> bool:
        """Record the app of an online socket. False (nothing written) when ``sid`` is not online:
        a socket that has gone is never brought back."""
        ...

    def resolve(self, target: str) -> str | None:
        """The online sid that ``target`` (a sid or a userId) reaches, or None when offline."""
        ...

    def user_of(self, sid: str) -> str | None:
        """The userId an online socket carries, or None."""
        ...

    def app_of(self, sid: str) -> str | None:
        """The app of an online socket, or None (offline, or app not known yet)."""
        ...

    def rebind(self, user_id: str, sid: str, take_over: bool = False) -> Rebind:
        """Make ``user_id`` reach the online socket ``sid``, which from now on carries it (after a
        reconnect). The userId ``sid`` carried before stops reaching it.

        A userId that reaches another online socket is never moved silently: nothing is written
        and the answer names that holder, unless ``take_over``, which moves it and names the
        holder that lost it. Nothing is written either when ``sid`` is not online. The check
        and the move are one atomic step, so two claims of one userId cannot both win."""
        ...

    def unregister(self, sid: str) -> bool:
        """Forget a socket. Its userId is forgotten only if it still reaches this sid, so a user
        already rebound to a newer socket stays online there: then the answer is True (the
        userId lives on in another online socket), else False."""
        ...

    def refresh(self, sids: Iterable[str]) -> list[str]:
        """Renew the TTL of these sockets and of the userIds they carry. Returns the sids that
        are not online (nothing renewed): a restarted Redis may have lost them."""
        ...

    def add_peers(self, user_id: str, peer: str) -> None:
        """Remember that ``user_id`` and ``peer`` exchanged (each is the other's peer)."""
        ...

    def peers_of(self, user_id: str) -> list[str]:
        """The userIds ``user_id`` exchanged with, while its peers set lives."""
        ...

    def dead_workers(self) -> list[str]:
        """The ids of other workers that registered sockets and have died."""
        ...

    def take_worker(self, worker: str) -> list[Departed]:
        """The sockets of dead ``worker``, to this caller only (a second caller gets none)."""
        ...

    def claim_nonce(self, app: str, nonce: str, ttl_seconds: float) -> bool:
        """True the first time ``nonce`` is seen for ``app`` within ``ttl_seconds``; False on a
        replay."""
        ...

    def claim_signature(self, app: str, sign: str, owner: str, ttl_seconds: float) -> bool:
        """True when ``sign`` is new for ``app`` within ``ttl_seconds`` (it is then remembered
        with ``owner``) or was first used by this same ``owner``; False on a replay by
        anyone else. An owner nobody else has (a random one) makes every reuse a replay."""
        ...


def _ttl_ms(seconds: float) -> int:
    """A positive TTL in whole milliseconds (Redis PX/PEXPIRE take integers > 0)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {seconds!r}")
    return max(1, math.ceil(seconds * 1000))


def _text(value: Any) -> str | None:
    """A Redis reply as str, whether or not the client decodes responses."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


# ---------------------------------------------------------------------------------------------
# Redis


# Delete the client key (and its worker index entry); delete the user key only if it still
# names this sid. One round trip, so a disconnect learns in it whether its userId lives on in
# another online socket (1) or not (0), which the presence notices need.
# KEYS: client key; ARGV: sid, user key prefix, client key prefix, worker index key or ''.
_UNREGISTER_LUA = """
local user = redis.call('HGET', KEYS[1], 'user')
redis.call('DEL', KEYS[1])
if ARGV[4] ~= '' then redis.call('HDEL', ARGV[4], ARGV[1]) end
if user == false then return 0 end
local holder = redis.call('GET', ARGV[2] .. user)
if holder == ARGV[1] then
  redis.call('DEL', ARGV[2] .. user)
  return 0
end
if holder ~= false and redis.call('EXISTS', ARGV[3] .. holder) == 1 then return 1 end
return 0
"""

# Set the app of a live client only: HSET on a missing key would resurrect it without a TTL.
# KEYS: client key; ARGV: app.
# Remember who used a signature first; answer whether this user is that one.
# KEYS: signature key; ARGV: owner, ttl ms.
_CLAIM_SIGNATURE_LUA = """
local first = redis.call('GET', KEYS[1])
if first == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if first == ARGV[1] then return 1 end
return 0
"""

_SET_APP_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'app', ARGV[1])
return 1
"""

# Point a userId at a live client and make the client carry it; the userId the client carried
# before (read by the caller, re-checked here) stops reaching it. A userId reaching another
# live client is left alone ({2, holder}) unless ARGV[6] is '1' (take over: {1, holder}).
# KEYS: client key, new user key, previous user key (= new user key when none);
# ARGV: sid, user id, ttl ms, previous user id ('' when none), client key prefix, take over.
# Returns {result, holder}: 0 client offline, -1 its userId changed meanwhile, 1 done.
_REBIND_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local previous = redis.call('HGET', KEYS[1], 'user')
if previous == false then previous = '' end
if previous ~= ARGV[4] then return {-1, ''} end
local holder = redis.call('GET', KEYS[2])
if holder == false or holder == ARGV[1] or redis.call('EXISTS', ARGV[5] .. holder) == 0 then
  holder = ''
elseif ARGV[6] ~= '1' then
  return {2, holder}
end
if KEYS[3] ~= KEYS[2] and redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('HSET', KEYS[1], 'user', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, holder}
"""


@dataclass(frozen=True)
class Batch:
    """Redis commands sent in one pipeline (one round trip); the flow that yields it gets the
    list of their replies. ``commands`` are (method name, arguments, keyword arguments) of
    redis-py's client, the same on its asyncio client."""

    commands: tuple[tuple[str, tuple[Any, ...], dict[str, Any]], ...]
    transaction: bool = False


def _batch(*commands: tuple[str, tuple[Any, ...], dict[str, Any]],
           transaction: bool = False) -> Batch:
    return Batch(commands, transaction)


def _cmd(name: str, *args: Any, **kwargs: Any) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    return name, args, kwargs


Flow = Generator[Batch, list[Any], _T]


class RedisFlows(PresenceFlows):
    """The registry's operations on Redis, each a generator that yields the :class:`Batch`es it
    sends and returns the answer: every decision is here, the engines only send. ``worker``:
    the worker whose sockets are registered (None: a registry that registers none, such as
    ``ExternalGateway``'s)."""

    def __init__(self, client: Any, prefix: str, ttl: float = DEFAULT_TTL,
                 worker: WorkerId | None = None) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = float(ttl)
        self._ttl_ms = _ttl_ms(ttl)
        self.worker = worker

    @staticmethod
    def _batch_of(commands: Iterable[Command], transaction: bool = False) -> Batch:
        return Batch(tuple(commands), transaction)

    @property
    def ttl(self) -> float:
        return self._ttl

    def _client_key(self, sid: str) -> str:
        return f"{self._prefix}client:{sid}"

    def _user_key(self, user_id: str) -> str:
        return f"{self._prefix}user:{user_id}"

    @staticmethod
    def _failed(operation: str, exc: Exception) -> RegistryError:
        """The RegistryError of a Redis failure. The original exception is not chained by the
        callers: its text can name the server's address, and a logged traceback would show it."""
        return RegistryError(f"registry {operation} failed: Redis error ({type(exc).__name__})")

    def _register(self, sid: str, user_id: str, app: str | None) -> Flow[None]:
        client_key = self._client_key(sid)
        commands = [_cmd("delete", client_key), _cmd("hset", client_key, "user", user_id)]
        if app is not None:
            commands.append(_cmd("hset", client_key, "app", app))
        commands += [_cmd("pexpire", client_key, self._ttl_ms),
                     _cmd("set", self._user_key(user_id), sid, px=self._ttl_ms),
                     *self._index_commands(sid, user_id)]
        yield _batch(*commands, transaction=True)

    def _set_app(self, sid: str, app: str) -> Flow[bool]:
        [done] = yield _batch(_cmd("eval", _SET_APP_LUA, 1, self._client_key(sid), app))
        return bool(done)

    def _resolve(self, target: str) -> Flow[str | None]:
        is_client, mapped = yield _batch(_cmd("exists", self._client_key(target)),
                                         _cmd("get", self._user_key(target)))
        if is_client:
            return target
        sid = _text(mapped)
        if sid is None:
            return None
        [online] = yield _batch(_cmd("exists", self._client_key(sid)))
        return sid if online else None

    def _field(self, sid: str, field: str) -> Flow[str | None]:
        [value] = yield _batch(_cmd("hget", self._client_key(sid), field))
        return _text(value)

    def _rebind(self, user_id: str, sid: str, take_over: bool) -> Flow[Rebind]:
        client_key = self._client_key(sid)
        new_key = self._user_key(user_id)
        # Two attempts: the script refuses (-1) if the client's userId changed between the
        # read and the script, e.g. a concurrent rebind of the same socket.
        for _ in range(2):
            previous = yield from self._field(sid, "user")
            previous_key = self._user_key(previous) if previous is not None else new_key
            [(result, holder)] = yield _batch(_cmd(
                "eval", _REBIND_LUA, 3, client_key, new_key, previous_key,
                sid, user_id, self._ttl_ms, previous or "", self._client_key(""),
                "1" if take_over else "0"))
            if int(result) == 1 and self.worker is not None:
                yield _batch(*self._index_commands(sid, user_id))
            if int(result) != -1:
                return Rebind(int(result) == 1, _text(holder) or None)
        return Rebind(False)

    def _unregister(self, sid: str) -> Flow[bool]:
        index = self._index_key(self.worker) if self.worker is not None else ""
        [lives_on] = yield _batch(_cmd("eval", _UNREGISTER_LUA, 1, self._client_key(sid), sid,
                                       self._user_key(""), self._client_key(""), index))
        return bool(lives_on)

    def _refresh(self, sids: Iterable[str]) -> Flow[list[str]]:
        sid_list = list(sids)
        missing: list[str] = []
        for start in range(0, len(sid_list), _REFRESH_CHUNK):
            chunk = sid_list[start : start + _REFRESH_CHUNK]
            commands = []
            for sid in chunk:
                key = self._client_key(sid)
                commands += [_cmd("pexpire", key, self._ttl_ms), _cmd("hget", key, "user")]
            replies = yield _batch(*commands)
            # replies alternate: PEXPIRE result (1 when the client key exists), its user.
            users = set()
            for sid, alive, user in zip(chunk, replies[::2], replies[1::2], strict=True):
                user_id = _text(user)
                if alive and user_id is not None:
                    users.add(user_id)
                else:
                    missing.append(sid)
            renew = [_cmd("pexpire", self._user_key(user_id), self._ttl_ms)
                     for user_id in users] + self._alive_commands(users)
            if renew:
                yield _batch(*renew)
        return missing

    def _claim_nonce(self, app: str, nonce: str, ttl_seconds: float) -> Flow[bool]:
        key = f"{self._prefix}nonce:{app}:{nonce}"
        [fresh] = yield _batch(_cmd("set", key, "1", nx=True, px=_ttl_ms(ttl_seconds)))
        return bool(fresh)

    def _claim_signature(self, app: str, sign: str, owner: str, ttl_seconds: float) -> Flow[bool]:
        key = f"{self._prefix}sign:{app}:{sign}"
        [fresh] = yield _batch(_cmd("eval", _CLAIM_SIGNATURE_LUA, 1, key, owner,
                                    _ttl_ms(ttl_seconds)))
        return bool(fresh)


class RedisRegistry(RedisFlows, Registry):
    """The registry in Redis, shared by every worker and node using the same ``prefix``; a
    blocking redis-py client sends the flows' pipelines."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: float = DEFAULT_TTL,
                 worker: WorkerId | None = None) -> None:
        super().__init__(client, prefix, ttl, worker)

    def _run(self, operation: str, flow: Flow[_T]) -> _T:
        """Send each pipeline ``flow`` yields and give it the replies; its answer. A Redis
        failure raises RegistryError."""
        try:
            replies: Any = None
            while True:
                try:
                    batch = flow.send(replies)
                except StopIteration as done:
                    return done.value
                pipe = self._client.pipeline(transaction=batch.transaction)
                for command in batch.commands:
                    queue_on(pipe, command)
                replies = pipe.execute()
        except redis.RedisError as exc:
            raise self._failed(operation, exc) from None

    def register(self, sid: str, user_id: str, app: str | None = None) -> None:
        self._run("register", self._register(sid, user_id, app))

    def set_app(self, sid: str, app: str) -> bool:
        return self._run("set_app", self._set_app(sid, app))

    def resolve(self, target: str) -> str | None:
        return self._run("resolve", self._resolve(target))

    def user_of(self, sid: str) -> str | None:
        return self._run("user_of", self._field(sid, "user"))

    def app_of(self, sid: str) -> str | None:
        return self._run("app_of", self._field(sid, "app"))

    def rebind(self, user_id: str, sid: str, take_over: bool = False) -> Rebind:
        return self._run("rebind", self._rebind(user_id, sid, take_over))

    def unregister(self, sid: str) -> bool:
        return self._run("unregister", self._unregister(sid))

    def refresh(self, sids: Iterable[str]) -> list[str]:
        return self._run("refresh", self._refresh(sids))

    def claim_nonce(self, app: str, nonce: str, ttl_seconds: float) -> bool:
        return self._run("claim_nonce", self._claim_nonce(app, nonce, ttl_seconds))

    def add_peers(self, user_id: str, peer: str) -> None:
        self._run("add_peers", self._add_peers(user_id, peer))

    def peers_of(self, user_id: str) -> list[str]:
        return self._run("peers_of", self._peers_of(user_id))

    def dead_workers(self) -> list[str]:
        return self._run("dead_workers", self._dead_workers())

    def take_worker(self, worker: str) -> list[Departed]:
        return self._run("take_worker", self._take_worker(worker))

    def claim_signature(self, app: str, sign: str, owner: str, ttl_seconds: float) -> bool:
        return self._run("claim_signature", self._claim_signature(app, sign, owner, ttl_seconds))
