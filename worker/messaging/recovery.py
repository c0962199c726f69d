"""Connection state recovery (Socket.IO v4.6+, issue 18), engine-free: what a session record
holds, which packets carry an offset, what a restore replays, and the bookkeeping that keeps
live delivery and replay from overlapping.

The protocol, as the official JS client speaks it:

- the CONNECT answer carries ``{"sid", "pid"}``; ``pid`` is the session's private id;
- every EVENT a client could miss carries, as its last argument, an *offset*: the id of the
  Redis stream entry the event travelled through (one stream per cluster channel,
  :func:`stream_of`); the client keeps the last one it saw;
- on reconnecting, the client's CONNECT auth carries ``{"pid", "offset", ...}``; the server
  finds the session record of ``pid`` (:class:`SessionRecord`: sid, namespace, rooms, data),
  gives the new socket the same sid, rooms and data, and sends every event after ``offset``
  that the session's rooms include, in order, before anything else.

The stream is the transport of those events, not a copy beside it: a worker does not deliver
its own emit when it makes it but when it reads the entry back, like every other worker. So an
event's offset is known before any client gets it, every client sees events in entry order, and
a replay (``XRANGE`` after the offset) is the same sequence live delivery followed: nothing
twice, nothing skipped (docs/design.md, "Connection state recovery").

No I/O here: the shells (``manager.SioctlRedisManager``; the asyncio one later) read and write
Redis; this module says what to read, what to write and what the answers mean.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .outbox import stream_key

# The disconnect reasons after which a session may come back (the client did not leave on
# purpose and the server did not send it away): python-engineio's reason strings.
RECOVERABLE = frozenset({"transport close", "transport error", "ping timeout"})
# How many times a restore reads the stream again to catch up with this worker's reader before
# it gives up (and the client gets a fresh session).
CATCH_UP_TRIES = 10
# The recovery channel's name is the cluster channel's and this; its stream is stream_of().
RECOVERY_SUFFIX = "#recovery"
# How often the stream's expiry is pushed back at most (per worker): an idle stream goes away
# a window after its last event.
STREAM_EXPIRE_EVERY = 1.0


# A session record (KEYS[1]) is written only while the socket's owner record (KEYS[2]) is
# absent or names this worker (ARGV[1]): a socket restored elsewhere while its old socket here
# was still open (a blip this worker had not noticed) must not get its record overwritten by
# the old one's refresh or disconnect. ARGV[2]: the record, ARGV[3]: its expiry (ms). Returns
# 1 when written, 0 when not (never nil: the publisher reads nil as a refused guarded XADD).
RECORD_SET = """
local owner = redis.call('get', KEYS[2])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('set', KEYS[1], ARGV[2], 'px', ARGV[3])
return 1
"""


# A restored socket's owner record (KEYS[1]: this worker, ARGV[1], for ARGV[2] ms) and session
# record (KEYS[2]: ARGV[3], for ARGV[4] ms), written at once while its restore runs: the restore
# took the record (GETDEL), so until both are back a worker killed now would lose the session.
# The owner record goes first (unconditionally: the socket is this worker's now, whatever an
# old worker's record says), so RECORD_SET's guard would pass too.
RESTORED_SET = """
redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
redis.call('set', KEYS[2], ARGV[3], 'px', ARGV[4])
return 1
"""

def stream_of(channel: str) -> str:
    """The Redis stream that carries the recoverable events of ``channel`` (the cluster's
    Redis channel), in every namespace."""
    return stream_key(channel + RECOVERY_SUFFIX)


def session_key(channel: str, pid: str) -> str:
    """The key of the session record of private id ``pid``."""
    return f"{channel}#session#{pid}"


def new_pid() -> str:
    """A fresh private session id (unguessable: it is the key to a session's rooms)."""
    return secrets.token_urlsafe(18)


def recovery_auth(data: Any) -> tuple[str, str] | None:
    """(pid, offset) when a client's CONNECT auth asks for a restore, else None."""
    if not isinstance(data, dict):
        return None
    pid, offset = data.get("pid"), data.get("offset")
    if isinstance(pid, str) and isinstance(offset, str) and pid and offset:
        return pid, offset
    return None


def eligible(message: dict[str, Any]) -> bool:
    """Whether a python-socketio manager message is an event a client may miss and get back:
    an emit without an acknowledgement (Node: no ack, not volatile)."""
    return message.get("method") == "emit" and message.get("callback") is None


def with_offset(message: dict[str, Any], offset: str) -> dict[str, Any]:
    """``message`` (an emit) with ``offset`` appended as the event's last argument, in the
    layout ``PubSubManager._handle_emit`` reads (``data`` a list of arguments; binary: the
    first item is the argument list with placeholders, the rest the attachments)."""
    data = list(message.get("data") or [])
    if message.get("binary"):
        data[0] = [*data[0], offset]
    elif data == [None]:
        # emit(event) with no data: python-socketio sends no argument at all.
        data = [offset]
    else:
        data.append(offset)
    return {**message, "data": data}


def older_or_same(a: str, b: str) -> bool:
    """True when stream id ``a`` is ``b`` or comes before it."""
    return _parts(a) <= _parts(b)


def _parts(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def valid_offset(offset: str) -> bool:
    """Whether ``offset`` has the shape of a stream entry id (a client may send anything)."""
    ms, sep, seq = offset.partition("-")
    return bool(sep) and ms.isdigit() and seq.isdigit() and len(offset) <= 41


@dataclass
class SessionRecord:
    """What Redis keeps of a socket so that it can come back: its sid, private id, namespace,
    rooms (its own sid room left out) and data (python-socketio's user session)."""

    sid: str
    pid: str
    namespace: str
    rooms: list[Any] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def dumps(self) -> str:
        """The record as stored; data that JSON cannot hold is left out (and said so by
        ``data_kept``)."""
        try:
            data_text = json.dumps(self.data)
        except (TypeError, ValueError):
            data_text = "null"
        rooms = [room for room in self.rooms if isinstance(room, (str, int))]
        return (f'{{"sid": {json.dumps(self.sid)}, "pid": {json.dumps(self.pid)}, '
                f'"nsp": {json.dumps(self.namespace)}, "rooms": {json.dumps(rooms)}, '
                f'"data": {data_text}}}')

    @classmethod
    def loads(cls, raw: Any) -> SessionRecord | None:
        """The record in ``raw`` (bytes or str), or None when it is none."""
        try:
            value = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        except (TypeError, ValueError, UnicodeDecodeError, AttributeError):
            return None
        if not isinstance(value, dict):
            return None
        sid, pid, nsp = value.get("sid"), value.get("pid"), value.get("nsp")
        rooms, data = value.get("rooms"), value.get("data")
        if not (isinstance(sid, str) and isinstance(pid, str) and isinstance(nsp, str)):
            return None
        return cls(sid, pid, nsp, rooms if isinstance(rooms, list) else [],
                   data if isinstance(data, dict) else {})


def reaches(message: dict[str, Any], namespace: str, sid: str, rooms: Iterable[Any]) -> bool:
    """Whether the emit ``message`` was addressed to socket ``sid`` of ``namespace`` in
    ``rooms`` (its own sid room counts), as python-socketio's ``get_participants`` and
    ``skip_sid`` decide for a connected socket."""
    if (message.get("namespace") or "/") != namespace:
        return False
    skip = message.get("skip_sid")
    if skip == sid or (isinstance(skip, list) and sid in skip):
        return False
    room = message.get("room")
    if room is None:
        return True
    member = {sid, *rooms}
    if isinstance(room, list):
        return any(r in member for r in room)
    return room in member


def entry_data(fields: Any) -> Any:
    """The message an XRANGE/XREAD entry's fields hold (field ``d``), or None."""
    if not isinstance(fields, dict):
        return None
    return fields.get(b"d", fields.get("d"))


def entry_id(value: Any) -> str:
    """A stream entry id as a str."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class Restore:
    """A restore under way for one CONNECT: the record found, and the events to replay
    (``missed``: (offset, message) in order), read up to ``read_to``."""

    record: SessionRecord
    offset: str
    missed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    read_to: str = ""
    seen: set[str] = field(default_factory=set)
    # How many of ``missed`` were sent to the socket already.
    sent: int = 0

    def take(self, entries: Iterable[tuple[Any, Any]],
             decode: Callable[[Any], dict[str, Any] | None]) -> None:
        """Add the entries an XRANGE after ``read_to`` answered: those addressed to the
        session, once each (a batch the publisher sent twice has one ``mid``)."""
        for raw_id, fields in entries:
            offset = entry_id(raw_id)
            self.read_to = offset
            message = decode(entry_data(fields))
            if message is None or not eligible(message):
                continue
            mid = message.get("mid")
            if isinstance(mid, str):
                if mid in self.seen:
                    continue
                self.seen.add(mid)
            if reaches(message, self.record.namespace, self.record.sid, self.record.rooms):
                self.missed.append((offset, message))


class Sessions:
    """A worker's recovery state: the private id of each socket connected here, the sockets
    that were restored, the restores in progress, and the sockets whose replay reached
    further than the reader (the reader skips them up to there)."""

    def __init__(self, window: float) -> None:
        self.window = window
        # (namespace, sid) -> pid, for every socket connected here with recovery on.
        self.pids: dict[tuple[str, str], str] = {}
        # (namespace, sid) of the sockets that came back (until they disconnect).
        self.recovered: set[tuple[str, str]] = set()
        # (eio_sid, namespace) -> (pid, Restore or None) for a CONNECT being handled.
        self.connecting: dict[tuple[str, str], tuple[str, Restore | None]] = {}
        # (namespace, sid) of sockets being restored: the reader leaves them out meanwhile.
        self.catching_up: set[tuple[str, str]] = set()
        # (namespace, sid) -> the last offset replayed to it; the reader leaves it out of
        # entries up to there.
        self.replayed_to: dict[tuple[str, str], str] = {}
        # (namespace, sid) of sockets leaving in a way they may come back from (the server's
        # disconnect reason said so): their record is kept for the window.
        self.leaving: set[tuple[str, str]] = set()
        self.stats = {"attempted": 0, "recovered": 0, "expired": 0}

    def skipped(self, namespace: str, offset: str) -> list[str]:
        """The sids of ``namespace`` that the reader must leave out of entry ``offset``
        (being restored, or replayed past it); forgets the replays it has passed."""
        skip = [sid for ns, sid in self.catching_up if ns == namespace]
        for key, upto in list(self.replayed_to.items()):
            if older_or_same(offset, upto):
                if key[0] == namespace:
                    skip.append(key[1])
            else:
                del self.replayed_to[key]
        return skip

    def forget(self, namespace: str, sid: str) -> str | None:
        """Socket ``sid`` left: drop what is kept about it; returns its pid, if it had one."""
        key = (namespace, sid)
        self.recovered.discard(key)
        self.catching_up.discard(key)
        self.replayed_to.pop(key, None)
        self.leaving.discard(key)
        return self.pids.pop(key, None)

    def record_ttl_ms(self, refresh: float) -> int:
        """How long a connected socket's record lives unless rewritten: the window after the
        last rewrite (every ``refresh`` s), so a worker that dies without a word (SIGKILL)
        leaves its sockets recoverable for between the window and the window + ``refresh``."""
        return int((self.window + refresh) * 1000)

    def window_ms(self) -> int:
        return int(self.window * 1000)
