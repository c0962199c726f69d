"""Connection state recovery in the Redis manager, engine-free (issue 18; the protocol and the
records are :mod:`.recovery`).

:class:`RecoveryMixin` goes before :class:`.base.SioctlManagerBase` in a manager's bases. With
recovery off (``sessions`` None) it changes nothing. With it on:

- an eligible emit (``recovery.eligible``) is not delivered where it is made nor published:
  it is appended to the recovery stream (``_recovery_publish``, queued on the publisher like
  every other command), and every worker, this one included, delivers it when its recovery
  reader reads it back (``_deliver_entry``), with the entry id appended as the offset;
- each socket connected here has a session record in Redis, written when it connects (a
  restored one's at once with its owner record, before its CONNECT answer), when its
  rooms change and with the owner records' refresh (a worker killed without a word leaves them
  behind), and on a recoverable disconnect with exactly the window as its expiry;
- a CONNECT that restores (the server's ``RecoveryServerMixin`` found the record) gets the old
  sid, its rooms, and the events it missed, in order, before its CONNECT answer
  (``pre_connect``); the shell reads them (``start_restore``, ``_finish_restore``: blocking
  or awaited) and this mixin decides what they mean.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sioctl.worker.flow import Flow, call

from . import recovery
from .base import OWNER_TTL
from .envelope import decode
from .recovery import RECOVERY_SUFFIX, Restore, SessionRecord, Sessions

# Stream entries read per XRANGE while a restore reads what a session missed.
REPLAY_PAGE = 1000


class RecoveryMixin:
    """The engine-free half of connection state recovery (see the module docstring)."""

    if TYPE_CHECKING:
        # Provided by SioctlManagerBase and python-socketio's manager classes.
        channel: str
        host_id: str
        json: Any
        rooms: dict[str, dict[Any, Any]]
        server: Any
        publisher: Any
        stream_maxlen: int

        def _outgoing(self, channel: str, data: dict[str, Any], sequenced: bool = True,
                      mid: bool = False, fresh: bool = False) -> str | bytes: ...

        def _incoming(self, channel: str, raw: Any) -> dict[str, Any] | None: ...

        def _nobody_here(self, message: dict[str, Any]) -> bool: ...

        def get_rooms(self, sid: str, namespace: str) -> list[Any]: ...

        def eio_sid_from_sid(self, sid: str, namespace: str) -> str | None: ...

        def is_connected(self, sid: str, namespace: str) -> bool: ...

        def _owner_key(self, namespace: str, sid: str) -> str: ...

        def _get_logger(self) -> Any: ...

        redis: Any

    sessions: Sessions | None = None
    recovery_reader: Any = None
    _stream_expired_at = 0.0

    def enable_recovery(self, window: float) -> None:
        """Turn connection state recovery on, sessions recoverable for ``window`` seconds;
        call before ``initialize``."""
        self.sessions = Sessions(window)
        if getattr(self, "cluster", False):
            self._one_slot()  # type: ignore[attr-defined]

    @property
    def recovery_channel(self) -> str:
        """The channel name recoverable events are counted under (their stream:
        ``recovery.stream_of(self.channel)``)."""
        return self.channel + RECOVERY_SUFFIX

    def recovered(self, sid: str, namespace: str = "/") -> bool:
        """Whether socket ``sid`` came back with its state (its events replayed) rather than
        as a new session: what a connect handler asks to tell the two apart."""
        return self.sessions is not None and (namespace, sid) in self.sessions.recovered

    def restoring(self, eio_sid: str, namespace: str) -> str | None:
        """The socket id the CONNECT being handled on ``eio_sid`` gets back (a restore), or
        None (a new session, or recovery off)."""
        if self.sessions is None:
            return None
        _, restore = self.sessions.connecting.get((eio_sid, namespace), (None, None))
        return None if restore is None else restore.record.sid

    def pid_of(self, sid: str, namespace: str) -> str | None:
        """The private session id of socket ``sid`` (None: recovery off, or not here)."""
        return None if self.sessions is None else self.sessions.pids.get((namespace, sid))

    # ---------------------------------------------------------------------- emitting

    def _recovery_publish(self, data: dict[str, Any]) -> bool:
        """With recovery on, queue an eligible emit on the recovery stream and say True (it
        is then delivered everywhere when read back); otherwise False."""
        if self.sessions is None or self.publisher is None or not recovery.eligible(data):
            return False
        stream = recovery.stream_of(self.channel)
        encoded = self._outgoing(self.recovery_channel, data, mid=True)
        self.publisher.command("xadd", stream, "MAXLEN", "~", self.stream_maxlen, "*",
                               "d", encoded)
        now = time.monotonic()
        if now - self._stream_expired_at >= recovery.STREAM_EXPIRE_EVERY:
            # Entries older than the window restore nobody; the stream goes a window (and a
            # little) after the last event.
            self._stream_expired_at = now
            self.publisher.command("pexpire", stream,
                                   self.sessions.window_ms() + 2 * int(
                                       recovery.STREAM_EXPIRE_EVERY * 1000))
        return True

    def _emitted_here(self, message: dict[str, Any]) -> bool:
        """Whether ``message`` is this worker's own eligible emit, which python-socketio's
        ``emit()`` hands to ``_handle_emit`` before publishing it: with recovery its delivery
        waits for the stream entry (and its offset), read back like any other worker's."""
        return (self.sessions is not None and message.get("host_id") == self.host_id
                and recovery.eligible(message))

    def _handle_emit(self, message: dict[str, Any]) -> Any:
        if self._emitted_here(message) or self._nobody_here(message):
            return None
        return self._library_handle_emit(message)

    def _library_handle_emit(self, message: dict[str, Any]) -> Any:
        """python-socketio's ``_handle_emit`` (a coroutine under asyncio)."""
        return super()._handle_emit(message)  # type: ignore[misc]

    def _entry_message(self, offset: str, raw: Any) -> dict[str, Any] | None:
        """The emit to deliver here for the recovery stream's entry ``offset``: the offset
        appended, the sockets being restored or replayed past it skipped; None when there is
        none (not a message, or one this reader handled already)."""
        assert self.sessions is not None
        data = self._incoming(self.recovery_channel, raw)
        if data is None or not recovery.eligible(data):
            return None
        mid = data.get("mid")
        first_time = getattr(self.recovery_reader, "first_time", None)
        if first_time is not None and isinstance(mid, str) and not first_time(mid):
            return None
        message = recovery.with_offset(data, offset)
        skip = self.sessions.skipped(message.get("namespace") or "/", offset)
        if skip:
            before = message.get("skip_sid")
            before = before if isinstance(before, list) else [before] if before else []
            message["skip_sid"] = [*before, *skip]
        return message

    def _deliver_entry(self, offset: str, raw: Any) -> None:
        """Deliver the recovery stream's entry ``offset`` to the sockets here it addresses."""
        message = self._entry_message(offset, raw)
        if message is not None:
            self._library_handle_emit(message)

    # ---------------------------------------------------------------- session records

    def _write_record(self, namespace: str, sid: str, ttl_ms: int) -> None:
        """Queue the session record of socket ``sid`` (rooms and data as they are now), to be
        written unless another worker owns the socket now (``recovery.RECORD_SET``)."""
        record = self._record_of(namespace, sid)
        if record is None or self.publisher is None:
            return
        self.publisher.command("eval", recovery.RECORD_SET, 2,
                               recovery.session_key(self.channel, record.pid),
                               self._owner_key(namespace, sid), self.host_id, record.dumps(),
                               ttl_ms)

    def _record_of(self, namespace: str, sid: str) -> SessionRecord | None:
        """The session record of socket ``sid`` as it is now (None: it has no session)."""
        pid = None if self.sessions is None else self.sessions.pids.get((namespace, sid))
        if pid is None:
            return None
        rooms = [room for room in self.get_rooms(sid, namespace) if room != sid]
        return SessionRecord(sid, pid, namespace, rooms, self._session_data(sid, namespace))

    def _session_data(self, sid: str, namespace: str) -> dict[str, Any]:
        """python-socketio's user session of ``sid`` (``sio.get_session``), read without
        ``get_session``'s check that the Engine.IO session is still open: a disconnecting
        socket's data is saved too."""
        eio_sid = self.eio_sid_from_sid(sid, namespace)
        socket = self.server.eio.sockets.get(eio_sid) if eio_sid else None
        data = getattr(socket, "session", None)
        value = data.get(namespace) if isinstance(data, dict) else None
        return value if isinstance(value, dict) else {}

    def _refresh_records(self, refresh: float) -> None:
        """Rewrite every record of this worker (with the owner records' refresh)."""
        if self.sessions is None:
            return
        for namespace, sid in list(self.sessions.pids):
            self._write_record(namespace, sid, self.sessions.record_ttl_ms(refresh))

    def basic_enter_room(self, sid: str, namespace: str, room: Any,
                         eio_sid: str | None = None) -> Any:
        result = super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._rooms_changed(namespace, sid)
        return result

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> Any:
        result = super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        self._rooms_changed(namespace, sid)
        return result

    def _rooms_changed(self, namespace: str, sid: str) -> None:
        sessions = self.sessions
        if sessions is not None and (namespace, sid) in sessions.pids and \
                self.is_connected(sid, namespace):
            self._write_record(namespace, sid, sessions.record_ttl_ms(self._record_refresh()))

    def _record_refresh(self) -> float:
        raise NotImplementedError  # the shell's refresh period of owner (and session) records

    def _claim_owned_sockets(self) -> None:
        super()._claim_owned_sockets()  # type: ignore[misc]
        self._refresh_records(self._record_refresh())

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> Any:
        self._recovery_disconnect(sid, namespace)
        return super().basic_disconnect(sid, namespace, **kwargs)  # type: ignore[misc]

    def _recovery_disconnect(self, sid: str, namespace: str) -> None:
        """Socket ``sid`` is leaving (its rooms still here): keep its record for the window
        when it left in a way it may come back from (the server marked it in ``leaving``),
        delete it otherwise; forget it here."""
        sessions = self.sessions
        if sessions is None:
            return
        key = (namespace, sid)
        if key in sessions.leaving:
            sessions.leaving.discard(key)
            self._write_record(namespace, sid, sessions.window_ms())
        else:
            pid = sessions.pids.get(key)
            if pid is not None and self.publisher is not None:
                self.publisher.command("del", recovery.session_key(self.channel, pid))
        sessions.forget(namespace, sid)

    # --------------------------------------------------------------------- restoring
    # Written once as flows (worker/flow.py): the eventlet manager runs them blocking, the
    # asyncio one awaits each call; a Redis error is raised at the yield that made the call.

    def start_restore_flow(self, namespace: str, auth: Any) -> Flow[tuple[str, Restore | None]]:
        """The private id a CONNECT to ``namespace`` gets and, when its ``auth`` asks for a
        restore that can be made, the restore with the events missed so far (the record is
        taken: a session comes back once): a GETDEL and XRANGEs."""
        assert self.sessions is not None
        asked = recovery.recovery_auth(auth)
        if asked is None:
            if isinstance(auth, dict) and auth.get("pid"):
                # As in Node: without an offset what the session missed is not known (the
                # official client sends one only once it has received an event).
                self._no_restore(namespace, "its CONNECT has a private id but no offset (the "
                                 "client had received no event in that session)")
            return recovery.new_pid(), None
        pid, offset = asked
        self.sessions.stats["attempted"] += 1
        stream = recovery.stream_of(self.channel)
        restore: Restore | None
        try:
            raw = yield call(self.redis.getdel, recovery.session_key(self.channel, pid))
            restore = self._restore_of(raw, namespace, pid, offset)
            if restore is None:
                self._no_restore(namespace, "no session record for its private id (expired, "
                                 "restored already, or never written)" if raw is None else
                                 "its session record does not match the CONNECT")
            elif (yield call(self.redis.xrange, stream, offset, offset, count=1)):
                yield from self._read_missed(restore)
            elif not (yield call(self.redis.exists, stream)):
                self._nothing_missed(restore)
            else:  # the offset was trimmed away: what followed it is not known
                self._no_restore(namespace, f"its offset {offset} is not in the stream any more")
                restore = None
        except Exception as exc:  # Redis away: a fresh session
            self._get_logger().warning("cannot restore a session (%s): a new one instead", exc)
            restore = None
        if restore is None:
            self.sessions.stats["expired"] += 1
            return recovery.new_pid(), None
        return pid, restore

    def _read_missed(self, restore: Restore) -> Flow[None]:
        """Read the recovery stream after ``restore.read_to`` to its end, into ``restore``."""
        stream = recovery.stream_of(self.channel)
        while True:
            entries = yield call(self.redis.xrange, stream, "(" + restore.read_to, "+",
                                 count=REPLAY_PAGE)
            restore.take(entries, self._decode_entry)
            if len(entries) < REPLAY_PAGE:
                return

    def finish_restore_flow(self, restore: Restore, sid: str) -> Flow[None]:
        """Socket ``sid`` came back: its rooms, then what it missed up to where this
        worker's reader is, in order, before its CONNECT answer (docs/design.md, "Restoring
        without a gap or a duplicate"). The reader leaves the socket out meanwhile; each
        replayed event is sent before the next, and live delivery to the socket resumes only
        after a check that the replay reached the reader, with no yield in between."""
        self._restore_rooms(restore, sid)
        yield from self._keep_restored(restore.record.namespace, sid)
        for _ in range(recovery.CATCH_UP_TRIES):
            for message in self._unsent(restore, sid):
                yield call(self._library_handle_emit, message)
            if self._caught_up(restore):
                self._restored(restore, sid)  # no switch since the check
                return
            try:
                yield from self._read_missed(restore)
            except Exception as exc:
                self._get_logger().warning("cannot finish a restore (%s)", exc)
                break
        self._restore_failed(restore.record.namespace, sid)

    def _keep_restored(self, namespace: str, sid: str) -> Flow[None]:
        """Write the restored socket's owner record and session record (rooms and data as
        restored) at once, in one round trip, before its replay and its CONNECT answer: the
        restore took the record (GETDEL), and a queued write would leave the session lost
        if this worker died before the publisher sent it. A replay cut short by a death is
        then recovered from the client's last offset. Redis not answering: the connect
        queues both as for any socket."""
        record = self._record_of(namespace, sid)
        if record is None or self.sessions is None:
            return
        try:
            yield call(self.redis.execute_command, "eval", recovery.RESTORED_SET, 2,
                       self._owner_key(namespace, sid),
                       recovery.session_key(self.channel, record.pid), self.host_id,
                       int(OWNER_TTL * 1000), record.dumps(),
                       self.sessions.record_ttl_ms(self._record_refresh()))
        except Exception as exc:
            self._get_logger().warning("cannot keep a restored session yet (%s)", exc)

    def _restore_rooms(self, restore: Restore, sid: str) -> None:
        """A restored socket gets its data back (python-socketio's user session, before its
        connect handler runs) and rejoins its rooms (here: it is connected here)."""
        namespace = restore.record.namespace
        eio_sid = self.eio_sid_from_sid(sid, namespace)
        socket = self.server.eio.sockets.get(eio_sid) if eio_sid else None
        session = getattr(socket, "session", None)
        if isinstance(session, dict) and restore.record.data:
            session.setdefault(namespace, {}).update(restore.record.data)
        for room in restore.record.rooms:
            if room != sid and room is not None:
                try:
                    super().basic_enter_room(sid, namespace, room)  # type: ignore[misc]
                except ValueError:
                    pass  # a room named like another socket's sid: not joinable

    def _unsent(self, restore: Restore, sid: str) -> list[dict[str, Any]]:
        """The missed events not sent to the restored socket yet, in order, each addressed to
        it alone; from now on they count as sent."""
        messages = []
        for offset, message in restore.missed[restore.sent:]:
            single = recovery.with_offset(message, offset)
            single.update(room=sid, skip_sid=None, callback=None)
            messages.append(single)
        restore.sent = len(restore.missed)
        return messages

    def _restore_of(self, raw: Any, namespace: str, pid: str, offset: str) -> Restore | None:
        """The restore the record ``raw`` (GETDEL's answer) allows for a CONNECT to
        ``namespace`` with ``pid`` and ``offset``, before the offset is looked for in the
        stream (None: none, the client gets a new session)."""
        record = SessionRecord.loads(raw)
        if record is None or record.namespace != namespace or record.pid != pid or \
                not recovery.valid_offset(offset):
            return None
        return Restore(record, offset, read_to=offset)

    def _nothing_missed(self, restore: Restore) -> None:
        """The recovery stream is gone: it expires a window after its last event, so no
        event was added while the client was away (it left less than a window ago) and
        there is nothing to replay. The replay counts as read up to this worker's reader."""
        position = self.recovery_reader.position() if self.recovery_reader else None
        if position is not None and not recovery.older_or_same(position, restore.read_to):
            restore.read_to = position

    def _caught_up(self, restore: Restore) -> bool:
        """Whether the restore has read the stream as far as this worker's reader (the
        reader delivers everything after its position live)."""
        position = self.recovery_reader.position() if self.recovery_reader else None
        return position is None or recovery.older_or_same(position, restore.read_to)

    def _restore_failed(self, namespace: str, sid: str) -> None:
        """The stream could not be read up to the reader: no replay (it could skip events);
        the socket keeps its sid but gets a new private id, and the client sees recovered
        false. The record kept under the old private id goes (queued)."""
        assert self.sessions is not None
        self._no_restore(namespace, f"socket {sid}: its replay did not catch up with this "
                         "worker's reader")
        old = self.sessions.pids.get((namespace, sid))
        if old is not None and self.publisher is not None:
            self.publisher.command("del", recovery.session_key(self.channel, old))
        self.sessions.pids[(namespace, sid)] = recovery.new_pid()
        self.sessions.stats["expired"] += 1

    def _no_restore(self, namespace: str, why: str) -> None:
        """Say why a CONNECT that asked for a restore gets a new session instead (once per
        CONNECT; the private id, the key to a session, is not logged): a client that comes
        back as a new session has lost what it missed, and this is where to see why."""
        self._get_logger().info("connection state recovery in %s: a new session instead of "
                                "a restore: %s", namespace, why)

    def _restored(self, restore: Restore, sid: str) -> None:
        """The replay is sent and reached as far as the reader: from now on the reader leaves
        the socket out of entries up to where the replay read only; the socket counts as
        recovered."""
        assert self.sessions is not None
        key = (restore.record.namespace, sid)
        self.sessions.catching_up.discard(key)
        self.sessions.replayed_to[key] = restore.read_to
        self.sessions.recovered.add(key)
        self.sessions.stats["recovered"] += 1

    def _decode_entry(self, raw: Any) -> dict[str, Any] | None:
        """A recovery stream entry's message, as ``Restore.take`` reads it."""
        return decode(raw, self.json.loads) if raw is not None else None

    def recovery_figures(self) -> dict[str, Any]:
        """Recoveries attempted / recovered / expired since this worker started (expired: the
        record or the offset was gone, or the stream could not be read), and the sockets with
        a session here."""
        if self.sessions is None:
            return {}
        return {**self.sessions.stats, "sessions": len(self.sessions.pids)}

    def figures(self) -> dict[str, Any]:
        """The manager's figures, with ``recovery`` (``recovery_figures``) when it is on."""
        figures: dict[str, Any] = super().figures()  # type: ignore[misc]
        if self.sessions is not None:
            figures["recovery"] = self.recovery_figures()
        return figures
