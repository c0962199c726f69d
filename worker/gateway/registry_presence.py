"""What the gateway's presence notices (:mod:`.presence`) keep in the registry: who exchanged
with whom, and which worker holds which socket, so that a worker that died can be noticed.

Redis layout, beside :mod:`.registry`'s (``{prefix}`` is the registry's key prefix)::

    {prefix}peers:{userId}       set of the userIds it exchanged with       PX ttl
                                 (both ways: a sendToOthers adds each to the other's set)
    {prefix}workers              set of worker ids that registered sockets  (no expiry)
    {prefix}worker:{worker id}   hash sid -> userId of its sockets          PX 2 ttl
    {prefix}alive:{worker id}    "1" while the worker refreshes             PX ttl

A peers set lives ``ttl`` after its userId's socket last refreshed it, so a userId back within
that long (reconnectAndUpdates) is announced to the sockets it had exchanged with, whichever side
sent. A worker id (:class:`WorkerId`) names the node (boot id and pid namespace), the pid and
the process's start time, so that a worker of the same node tells a dead worker from a live one
at once (:func:`running`), even when the pid was reused; a worker of another node learns it
when the dead worker's ``alive`` key expires. Its sockets are then *taken* (:meth:`_take_worker`:
one worker wins, through SREM) and announced as gone.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

_T = TypeVar("_T")

# Commands as registry.Batch takes them: (redis-py method, args, kwargs).
Command = tuple[str, tuple[Any, ...], dict[str, Any]]


def _cmd(name: str, *args: Any, **kwargs: Any) -> Command:
    return name, args, kwargs


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


# ------------------------------------------------------------------------------ worker ids


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def node_id() -> str:
    """This machine and pid namespace: two workers with the same node id can check each
    other's pid. Without /proc, the hostname (pids are then checked with kill 0)."""
    boot = (_read("/proc/sys/kernel/random/boot_id") or os.uname().nodename).strip()
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    return f"{boot}{pidns}".replace("/", "_")


def start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, /proc/PID/stat), None when
    it is gone or a zombie (a SIGKILLed worker its master has not reaped yet)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The command name, in parentheses, may hold spaces: the fields start after the last ")".
    fields = stat[stat.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X") or len(fields) < 20:
        return None
    return fields[19]


@dataclass(frozen=True)
class WorkerId:
    """A worker process, as written in the registry: ``node/pid/start``."""

    node: str
    pid: int
    start: str

    def __str__(self) -> str:
        return f"{self.node}/{self.pid}/{self.start}"

    @classmethod
    def here(cls) -> WorkerId:
        """This process."""
        pid = os.getpid()
        return cls(node_id(), pid, start_time(pid) or "0")

    @classmethod
    def parse(cls, text: str) -> WorkerId | None:
        node, _, rest = text.rpartition("/")
        node, _, pid = node.rpartition("/")
        return cls(node, int(pid), rest) if node and pid.isdigit() else None


def running(worker: WorkerId) -> bool:
    """Whether ``worker`` (of this node) still runs: its pid is there with its start time."""
    if os.path.isdir("/proc/self"):
        return start_time(worker.pid) == worker.start
    try:
        os.kill(worker.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Departed:
    """A socket of a dead worker: its id, and the userId and app it carried (when known)."""

    sid: str
    user_id: str | None
    app: str | None


# Take a dead worker's index: the one caller whose SREM removes it gets its sockets.
# KEYS: workers set, worker index; ARGV: worker id.
_TAKE_WORKER_LUA = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return {} end
local sockets = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[2])
return sockets
"""

Flow = Generator[Any, list[Any], _T]


class PresenceFlows:
    """The flows of the presence records, mixed into ``registry.RedisFlows`` (which gives the
    prefix, the TTL, the client keys and ``_batch``)."""

    _prefix: str
    _ttl_ms: int
    worker: WorkerId | None

    def _client_key(self, sid: str) -> str:
        raise NotImplementedError

    @staticmethod
    def _batch_of(commands: Iterable[Command], transaction: bool = False) -> Any:
        raise NotImplementedError

    def _peers_key(self, user_id: str) -> str:
        return f"{self._prefix}peers:{user_id}"

    def _index_key(self, worker: WorkerId | str) -> str:
        return f"{self._prefix}worker:{worker}"

    def _alive_key(self, worker: WorkerId | str) -> str:
        return f"{self._prefix}alive:{worker}"

    def _workers_key(self) -> str:
        return f"{self._prefix}workers"

    def _index_commands(self, sid: str, user_id: str) -> list[Command]:
        """Record ``sid`` (carrying ``user_id``) as this worker's, and the worker as alive."""
        if self.worker is None:
            return []
        index = self._index_key(self.worker)
        return [_cmd("hset", index, sid, user_id), _cmd("pexpire", index, 2 * self._ttl_ms),
                _cmd("sadd", self._workers_key(), str(self.worker)),
                _cmd("set", self._alive_key(self.worker), "1", px=self._ttl_ms)]

    def _alive_commands(self, users: Iterable[str]) -> list[Command]:
        """Renew this worker's records and the peers sets of the userIds its sockets carry."""
        commands = [_cmd("pexpire", self._peers_key(user_id), self._ttl_ms) for user_id in users]
        if self.worker is not None:
            commands += [_cmd("pexpire", self._index_key(self.worker), 2 * self._ttl_ms),
                         _cmd("set", self._alive_key(self.worker), "1", px=self._ttl_ms)]
        return commands

    def _add_peers(self, user_id: str, peer: str) -> Flow[None]:
        a, b = self._peers_key(user_id), self._peers_key(peer)
        yield self._batch_of([_cmd("sadd", a, peer), _cmd("pexpire", a, self._ttl_ms),
                              _cmd("sadd", b, user_id), _cmd("pexpire", b, self._ttl_ms)])

    def _peers_of(self, user_id: str) -> Flow[list[str]]:
        [members] = yield self._batch_of([_cmd("smembers", self._peers_key(user_id))])
        return sorted(text for text in map(_text, members or ()) if text)

    def _dead_workers(self) -> Flow[list[str]]:
        """The workers that registered sockets and are dead: of this node, those that no longer
        run (a worker alive but slow to refresh is not taken for dead); of another node, those
        whose ``alive`` key expired."""
        [members] = yield self._batch_of([_cmd("smembers", self._workers_key())])
        others = sorted(text for text in map(_text, members or ())
                        if text and text != str(self.worker))
        if not others:
            return []
        alive = yield self._batch_of([_cmd("exists", self._alive_key(w)) for w in others])
        dead = []
        for text, exists in zip(others, alive, strict=True):
            parsed = WorkerId.parse(text)
            if parsed is not None and self.worker is not None \
                    and parsed.node == self.worker.node:
                if not running(parsed):
                    dead.append(text)
            elif not exists:
                dead.append(text)
        return dead

    def _take_worker(self, worker: str) -> Flow[list[Departed]]:
        """The sockets of dead ``worker``, taken (by this caller only) and unregistered: each
        with its userId and app, read before its entry is removed. Its userId's own entry is
        left to the caller's unregister (it may have been taken over by a live socket)."""
        [flat] = yield self._batch_of([_cmd("eval", _TAKE_WORKER_LUA, 2, self._workers_key(),
                                            self._index_key(worker), worker)])
        items = [_text(x) for x in flat or ()]
        indexed = dict(zip(items[::2], items[1::2], strict=True))
        sids = [sid for sid in indexed if sid]
        if not sids:
            return []
        fields = yield self._batch_of([_cmd("hmget", self._client_key(sid), "user", "app")
                                       for sid in sids])
        return [Departed(sid, _text(user) or indexed[sid], _text(app))
                for sid, (user, app) in zip(sids, fields, strict=True)]
