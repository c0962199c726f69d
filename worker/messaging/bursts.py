"""Emits heard from Redis delivered a burst at a time (issue 19, targeted emits, round 2).

The receiving worker of a targeted emit was the slower half of the targeted benchmark: per
message, python-socketio's listener thread handed it to ``_handle_emit`` and ``Manager.emit``
(then the fan-out, ``fanout.FanoutMixin``), and the socket got it with one ``send`` of its
own, a third of that worker's CPU. Now the readers hand over what Redis sent in one go (a
burst: ``reading.BURST`` pub/sub messages at most, or one XREAD), and the manager's
``_listen`` keeps here, per socket, the frames of every emit in the burst that
:func:`held_emit` accepts (another worker's emit to one room or socket with members here, no
callback, no binary attachments: what a targeted emit is). At the end of the burst each socket
gets its frames in one write (eventlet: one ``send``; asyncio: one ``transport.write``) where
the session can take it now, else its packets queued in order as ``send`` queues them.
Another worker's broadcasts to a namespace (no ``skip_sid``) are held alike while nothing is
held per session (and the other way round), their frames joined once for every socket of the
namespace here (s27-bcast: the publisher batches, so a worker fanning out broadcasts at a high
rate hears several in one read).

Order per socket: anything in the burst that is not held (a callback, a disconnect, a room
change, a query, a broadcast while frames are held per session, an emit to a room while
broadcasts are held...) first has every held frame written, then goes python-socketio's way,
and the burst is written before the reader reads on. Nothing here
yields to the loop between the read of a burst and its last held frame (the asyncio writes do
not await; only the sessions that must go through ``_send_eio_packet`` are awaited, after the
others are written).

The write rule is ``ws_frame.can_write_now`` as ``ConformantSocket.write_frame`` /
``AsyncSharedWrites.write_frame_now`` inline it, for several frames at once; a session class
with another ``write_frame`` (EIO=3, whose frames differ) is written a packet at a time
through its own.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sioctl.worker.protocol.async_engineio import AsyncConformantSocket
from sioctl.worker.protocol.core import ws_frame
from sioctl.worker.protocol.engineio_rules import ConformantSocket

from .fanout import fan_out_packets


class Held:
    """The packets and frames held for each session (by Engine.IO sid) during a burst, in the
    order they were heard; or, while none are, the broadcasts of the burst to one namespace
    (``broadcast``: their (packet, frame) pairs in order, for every socket of ``namespace``
    here), written to each socket with one write."""

    def __init__(self) -> None:
        self.sessions: dict[str, tuple[list[Any], list[Any]]] = {}
        self.namespace: str | None = None
        self.broadcast: list[tuple[Any, Any]] = []

    def __bool__(self) -> bool:
        return bool(self.sessions) or bool(self.broadcast)

    def add_broadcast(self, namespace: str, shared: list[tuple[Any, Any]]) -> None:
        """Hold the (packet, frame) pairs of one broadcast to ``namespace``."""
        self.namespace = namespace
        self.broadcast.extend(shared)

    def take_broadcast(self) -> tuple[str | None, list[tuple[Any, Any]]]:
        """(namespace, the held broadcasts' pairs), emptied."""
        taken = (self.namespace, self.broadcast)
        self.namespace, self.broadcast = None, []
        return taken

    def add(self, eio_sid: str, shared: list[tuple[Any, Any]]) -> None:
        """Hold the (packet, frame) pairs of one emit for ``eio_sid``."""
        held = self.sessions.get(eio_sid)
        if held is None:
            held = self.sessions[eio_sid] = ([], [])
        for pkt, frame in shared:
            held[0].append(pkt)
            held[1].append(frame)

    def take(self) -> list[tuple[str, list[Any], list[Any]]]:
        """(eio_sid, packets, frames) of every session, emptied."""
        taken = [(sid, pkts, frames) for sid, (pkts, frames) in self.sessions.items()]
        self.sessions = {}
        return taken


def held_emit(data: dict[str, Any], host_id: str,
              rooms: dict[Any, Any]) -> tuple[str, str | None, str, Any] | None:
    """(namespace, room, event, payload) of a message the listener delivers itself: another worker's
    emit (``host_id`` is this worker's) to one room (a socket is its own room) with members
    here, without a callback or binary attachments. ``payload`` is what python-socketio's
    ``_handle_emit`` hands to ``emit`` (a one-item list unwrapped, a longer one a tuple). None
    for anything else, which goes python-socketio's way as before."""
    if data.get("method") != "emit" or data.get("host_id") == host_id \
            or data.get("callback") is not None or data.get("binary") or "data" not in data:
        return None
    namespace, room, event = data.get("namespace"), data.get("room"), data.get("event")
    # A room (a socket is its own room), or None: a broadcast to the namespace, whose
    # python-socketio room None holds every socket of it here.
    if not (room is None or isinstance(room, str)) or not isinstance(namespace, str) \
            or not isinstance(event, str) or room not in rooms.get(namespace, ()):
        return None
    payload = data["data"]
    if isinstance(payload, list):
        payload = payload[0] if len(payload) == 1 else tuple(payload)
    return namespace, room, event, payload


def hold(manager: Any, data: dict[str, Any], held: Held) -> bool:
    """Whether ``data`` is an emit :func:`held_emit` accepts; if so its packets and frames,
    built once (``fanout.fan_out_packets``), are held for each of its recipients here. A
    broadcast (no room, no ``skip_sid``) is held for the whole namespace while no frames for
    single sessions are (and the other way round): False otherwise, and the caller writes what
    is held before it delivers ``data`` python-socketio's way, so each socket's order holds."""
    emit = held_emit(data, manager.host_id, manager.rooms)
    if emit is None:
        return False
    namespace, room, event, payload = emit
    if room is None:
        if held.sessions or data.get("skip_sid") or \
                (held.broadcast and held.namespace != namespace):
            return False
        held.add_broadcast(namespace, fan_out_packets(manager.server, event, payload,
                                                      namespace, None, decoded=True)[1])
        return True
    if held.broadcast:
        return False
    skipped, shared = fan_out_packets(manager.server, event, payload, namespace,
                                      data.get("skip_sid"), decoded=True)
    for sid, eio_sid in manager.get_participants(namespace, room):
        if sid not in skipped:
            held.add(eio_sid, shared)
    return True


def hold_or_log(manager: Any, data: dict[str, Any], held: Held) -> bool:
    """:func:`hold`, for either engine's listener: an error building the held frames is logged
    as python-socketio's listener logs a handler's, and ``data`` counts as dealt with (True)."""
    try:
        return hold(manager, data, held)
    except Exception:
        manager.server.logger.exception("Handler error in pubsub listening thread")
        return True


def write_held(manager: Any, held: Held) -> None:
    """Eventlet: write what ``held`` holds, each session's frames with one ``send`` when it
    can take them now, else packet by packet as the fan-out writes them."""
    server = manager.server
    now = time.time()  # for the ping timeout: nothing here yields
    log = server.eio.logger.isEnabledFor(logging.INFO)
    sessions = server.eio.sockets
    if held.broadcast:
        _write_broadcast(manager, held, now, log)
        return
    for eio_sid, pkts, frames in held.take():
        try:
            session = sessions.get(eio_sid)
            write = getattr(session, "write_frame", None)
            if write is None or session.closed:  # as FanoutMixin: python-engineio's way
                for pkt in pkts:
                    server._send_eio_packet(eio_sid, pkt)
            elif len(frames) == 1 or not _send_joined(session, frames, now, log):
                for pkt, frame in zip(pkts, frames, strict=True):
                    write(pkt, frame, now, log)
        except Exception:  # one session's failure is not the others' (nor the listener's)
            server.logger.exception("Handler error in pubsub listening thread")


def _write_broadcast(manager: Any, held: Held, now: float, log: bool) -> None:
    """Eventlet: the held broadcasts to every socket of their namespace here, joined once
    into one write (``_send_joined``) when there are several; a session that cannot take
    them now gets them packet by packet, as the fan-out writes them."""
    server = manager.server
    sessions = server.eio.sockets
    namespace, shared = held.take_broadcast()
    frames = [frame for _, frame in shared]
    joined = b"".join(frames) if len(frames) > 1 and None not in frames else None
    for _, eio_sid in manager.get_participants(namespace, None):
        try:
            session = sessions.get(eio_sid)
            write = getattr(session, "write_frame", None)
            if write is None or session.closed:  # as FanoutMixin: python-engineio's way
                for pkt, _ in shared:
                    server._send_eio_packet(eio_sid, pkt)
            elif joined is None or not _send_joined(session, frames, now, log, joined):
                for pkt, frame in shared:
                    write(pkt, frame, now, log)
        except Exception:  # one session's failure is not the others' (nor the listener's)
            server.logger.exception("Handler error in pubsub listening thread")


def _send_joined(session: Any, frames: list[Any], now: float, log: bool,
                 joined: bytes | None = None) -> bool:
    """``ConformantSocket.write_frame`` for several frames (``joined``: them joined, when
    the caller has joined them once for many sessions): written with one ``send`` (what
    the socket does not take at once queued for the writer, as one frame's rest). False
    (nothing done) when the session cannot take them now: the caller writes them one by one."""
    direct = session._sioctl_direct
    if type(session).write_frame is not ConformantSocket.write_frame or direct is None \
            or not session.upgraded or session.upgrading or session.closing \
            or session._sioctl_writing or direct.pending or direct.sendlock.locked() \
            or None in frames:
        return False
    last_ping = session.last_ping
    if last_ping and now - last_ping > session.server.ping_timeout \
            and not session.check_ping_timeout():  # closed, as write_frame leaves it
        return True
    if joined is None:
        joined = b"".join(frames)
    try:
        written = direct.raw.send(joined)
    except BlockingIOError:
        written = 0
    except OSError:
        return False  # write_frame queues each packet; the writer ends the session
    if written < len(joined):
        direct.hold_for_rest()
        session.queue.put(ws_frame.FrameRest(joined[written:]))
    if log:  # INFO, as python-engineio's send logs it
        for _ in frames:
            session.server.logger.info("%s: Sending packet MESSAGE (shared frame)", session.sid)
    return True


async def write_held_async(manager: Any, held: Held) -> None:
    """asyncio: write what ``held`` holds, each session's frames with one ``transport.write``
    when it can take them now, else its packets queued; the sessions that decline (closing,
    past their ping timeout, EIO=3, not sioctl's) then get theirs through python-socketio's
    ``_send_eio_packet``, awaited one after the other. Held broadcasts go to every socket of
    their namespace here, joined once."""
    server = manager.server
    now = time.time()
    log = server.eio.logger.isEnabledFor(logging.INFO)
    sessions = server.eio.sockets
    declined = []
    if held.broadcast:
        namespace, shared = held.take_broadcast()
        pkts = [pkt for pkt, _ in shared]
        frames = [frame for _, frame in shared]
        joined = b"".join(frames) if len(frames) > 1 and None not in frames else None
        for _, eio_sid in manager.get_participants(namespace, None):
            session = sessions.get(eio_sid)
            if session is None or \
                    not _write_joined_now(session, pkts, frames, now, log, joined):
                declined.append((eio_sid, pkts))
    for eio_sid, pkts, frames in held.take():
        session = sessions.get(eio_sid)
        if session is None or not _write_joined_now(session, pkts, frames, now, log):
            declined.append((eio_sid, pkts))
    for eio_sid, pkts in declined:
        try:
            for pkt in pkts:
                await server._send_eio_packet(eio_sid, pkt)
        except Exception:
            server.logger.exception("Handler error in pubsub listening thread")


def _write_joined_now(session: Any, pkts: list[Any], frames: list[Any], now: float,
                      log: bool, joined: bytes | None = None) -> bool:
    """``AsyncSharedWrites.write_frame_now`` for several frames (``joined``: them joined,
    when the caller has joined them once for many sessions); False (nothing done) for a
    session that declines."""
    if type(session).write_frame_now is not AsyncConformantSocket.write_frame_now:
        write = getattr(session, "write_frame_now", None)
        if write is None or len(frames) > 1:
            return False
        return bool(write(pkts[0], frames[0], now, log))
    if session.closed or session.closing:
        return False
    last_ping = session.last_ping
    if last_ping and now - last_ping > session.server.ping_timeout:
        return False
    direct = session._sioctl_direct
    protocol = direct.protocol if direct is not None else None
    if protocol is None or None in frames or not session.upgraded or session.upgrading:
        for pkt in pkts:
            session.queue.put_nowait(pkt)
    elif session._sioctl_writing or direct.qsize() or protocol.disconnected \
            or protocol.close_sent or not protocol.writable.is_set() \
            or protocol.transport.is_closing():
        # Behind what is queued (a client slow to read: the transport over its high-water
        # mark): the burst's frames queued as one, written as they are by the writer
        # (AsyncDirectWrites.send), rather than a uvicorn send per packet.
        if len(frames) > 1:
            session.queue.put_nowait(ws_frame.FrameRest(joined or b"".join(frames)))
        else:
            session.queue.put_nowait(pkts[0])
    else:
        protocol.transport.write(frames[0] if len(frames) == 1 else
                                 joined or b"".join(frames))
    if log:
        for _ in frames:
            session.server.logger.info("%s: Sending packet MESSAGE (fan-out)", session.sid)
    return True
