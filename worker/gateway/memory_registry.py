"""The gateway's registry of who is online, kept in this process only: for one worker without
Redis (see registry.py for the interface and what each method promises)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .registry import DEFAULT_TTL, Rebind, Registry, _ttl_ms
from .registry_presence import Departed


@dataclass
class _Client:
    user: str
    app: str | None
    expires: float


@dataclass
class _User:
    sid: str
    expires: float


class MemoryRegistry(Registry):
    """The registry in this process only: for one worker without Redis.

    ``clock`` (seconds, monotonic) decides expiry; tests may pass their own.
    """

    def __init__(
        self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        _ttl_ms(ttl)  # validates
        self._ttl = float(ttl)
        self._clock = clock
        self._clients: dict[str, _Client] = {}
        self._users: dict[str, _User] = {}
        self._nonces: dict[tuple[str, str], float] = {}
        self._signs: dict[tuple[str, str], tuple[str, float]] = {}
        # userId -> (the userIds it exchanged with, expiry).
        self._peers: dict[str, tuple[set[str], float]] = {}
        self._next_sweep = clock()

    @property
    def ttl(self) -> float:
        return self._ttl

    def _now(self) -> float:
        """The clock, after dropping expired entries at most about once a second (so nonces and
        dead users never pile up, without scanning everything on every call)."""
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + 1.0
            self._clients = {k: v for k, v in self._clients.items() if v.expires > now}
            self._users = {k: v for k, v in self._users.items() if v.expires > now}
            self._nonces = {k: v for k, v in self._nonces.items() if v > now}
            self._signs = {k: v for k, v in self._signs.items() if v[1] > now}
            self._peers = {k: v for k, v in self._peers.items() if v[1] > now}
        return now

    def _live_client(self, sid: str, now: float) -> _Client | None:
        entry = self._clients.get(sid)
        return entry if entry is not None and entry.expires > now else None

    def _live_user(self, user_id: str, now: float) -> _User | None:
        entry = self._users.get(user_id)
        return entry if entry is not None and entry.expires > now else None

    def register(self, sid: str, user_id: str, app: str | None = None) -> None:
        expires = self._now() + self._ttl
        self._clients[sid] = _Client(user_id, app, expires)
        self._users[user_id] = _User(sid, expires)

    def set_app(self, sid: str, app: str) -> bool:
        entry = self._live_client(sid, self._now())
        if entry is None:
            return False
        entry.app = app
        return True

    def resolve(self, target: str) -> str | None:
        now = self._now()
        if self._live_client(target, now) is not None:
            return target
        user = self._live_user(target, now)
        if user is not None and self._live_client(user.sid, now) is not None:
            return user.sid
        return None

    def user_of(self, sid: str) -> str | None:
        entry = self._live_client(sid, self._now())
        return entry.user if entry is not None else None

    def app_of(self, sid: str) -> str | None:
        entry = self._live_client(sid, self._now())
        return entry.app if entry is not None else None

    def rebind(self, user_id: str, sid: str, take_over: bool = False) -> Rebind:
        now = self._now()
        entry = self._live_client(sid, now)
        if entry is None:
            return Rebind(False)
        user = self._live_user(user_id, now)
        holder = None
        if user is not None and user.sid != sid and self._live_client(user.sid, now) is not None:
            holder = user.sid
            if not take_over:
                return Rebind(False, holder)
        previous = self._users.get(entry.user)
        if entry.user != user_id and previous is not None and previous.sid == sid:
            del self._users[entry.user]
        entry.user = user_id
        entry.expires = now + self._ttl
        self._users[user_id] = _User(sid, now + self._ttl)
        return Rebind(True, holder)

    def unregister(self, sid: str) -> bool:
        entry = self._clients.pop(sid, None)
        if entry is None:
            return False
        user = self._users.get(entry.user)
        if user is not None and user.sid == sid:
            del self._users[entry.user]
            return False
        now = self._now()
        return user is not None and self._live_user(entry.user, now) is not None \
            and self._live_client(user.sid, now) is not None

    def refresh(self, sids: Iterable[str]) -> list[str]:
        now = self._now()
        expires = now + self._ttl
        missing = []
        for sid in sids:
            entry = self._live_client(sid, now)
            if entry is None:
                missing.append(sid)
                continue
            entry.expires = expires
            user = self._live_user(entry.user, now)
            if user is not None:
                user.expires = expires
            if entry.user in self._peers:
                self._peers[entry.user] = (self._peers[entry.user][0], expires)
        return missing

    def add_peers(self, user_id: str, peer: str) -> None:
        now = self._now()
        for one, other in ((user_id, peer), (peer, user_id)):
            members, expires = self._peers.get(one, (set(), 0.0))
            self._peers[one] = ({*members, other} if expires > now else {other},
                                now + self._ttl)

    def peers_of(self, user_id: str) -> list[str]:
        members, expires = self._peers.get(user_id, (set(), 0.0))
        return sorted(members) if expires > self._now() else []

    def dead_workers(self) -> list[str]:
        return []  # one process: no other worker to die

    def take_worker(self, worker: str) -> list[Departed]:
        return []

    def claim_nonce(self, app: str, nonce: str, ttl_seconds: float) -> bool:
        _ttl_ms(ttl_seconds)  # validates
        now = self._now()
        key = (app, nonce)
        expires = self._nonces.get(key)
        if expires is not None and expires > now:
            return False
        self._nonces[key] = now + ttl_seconds
        return True

    def claim_signature(self, app: str, sign: str, owner: str, ttl_seconds: float) -> bool:
        _ttl_ms(ttl_seconds)  # validates
        now = self._now()
        key = (app, sign)
        first = self._signs.get(key)
        if first is not None and first[1] > now:
            return first[0] == owner
        self._signs[key] = (owner, now + ttl_seconds)
        return True
