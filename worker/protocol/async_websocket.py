"""An asyncio Engine.IO session's websocket, read without a task per frame.

python-engineio's ``AsyncSocket._websocket_handler`` reads each frame in a task of its own
(``asyncio.ensure_future(websocket_wait())`` under ``asyncio.wait_for(..., ping_interval +
ping_timeout)``): per message a task, its first step through the loop, a future and a timer
handle, about a tenth of a worker's CPU per echo (docs/benchmarks-optimizations.md, "Echo and
fixed costs"). :func:`serve_websocket` does what that method does, reading frames in the
session's own task; the time limit on one read is kept by :class:`ReadDeadline`, one loop timer
per websocket that is moved only when it fires.

Re-implemented from python-engineio 4.15's ``AsyncSocket._websocket_handler`` (track it: the
upgrade exchange, the writer, the end of the loop). The library contract lists it as a COPY.
The decisions on the frames read are :mod:`.core.ws_upgrade`'s, shared with eventlet's
handler (:mod:`.websocket_serve`).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from engineio import exceptions, packet

from .async_asgi import accept_websocket
from .async_read_deadline import DeadlineSweep, ReadDeadline
from .async_ws_reader import ProtocolReader, decoded, hand_over_target, received
from .core import write_stall, ws_frame, ws_upgrade
from .core.eio_rules import InvalidPacket
from .session_queue import SessionQueue


class AsyncLazyWriter:
    """Writes what is queued for one session's websocket, in order, without a task parked on
    the queue while nothing is (python-engineio's writer task, its ``poll()`` and the timeout
    around it held ~2 KiB per idle websocket; docs/benchmarks-optimizations.md, "Asyncio
    memory per idle websocket").

    The session's :class:`.session_queue.SessionQueue` calls :meth:`queued` after each put.
    While the websocket's transport can take a write now (uvicorn's websockets-sansio
    protocol, ``session._sioctl_direct``: the rule of the fan-out's ``write_frame_now``), no
    write of the writer is under way and the packet has a frame of its own
    (``ws_frame.shared_frame``), the packets at the head of the queue are framed and written
    to the transport at once, in the caller's step; otherwise a task writes the queue through
    the websocket until it is empty, and ends. Nothing overtakes a queued packet: a direct
    write takes the queue's head. ``None`` taken off the queue ends the websocket (closed, as
    python-engineio's writer does), and so does a failed write; nothing is written after that.
    A transport whose full buffer does not shrink for ``ping_interval + ping_timeout`` (the
    client reads nothing) is aborted: such a client is not kept (its queue growing) for ever.
    """

    __slots__ = ("_session", "_ws", "_task", "_ended", "_finishing")

    def __init__(self, session: Any, ws: Any) -> None:
        self._session = session
        self._ws = ws  # what the task sends through (async_engineio._AsyncGuardedWebSocket)
        self._task: asyncio.Task[None] | None = None  # the writer task, while it runs
        self._ended = False  # the websocket is closed by the writer: nothing more is written
        self._finishing = False  # the reader has ended: it drains the queue itself

    def queued(self) -> None:
        """Something was put on the session's queue: write it now, else start the writer task
        unless it runs. Called from any task and from loop callbacks (the ping timer): it never
        blocks."""
        if self._task is not None or self._ended or self._finishing:
            return
        if self._write_now():
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _write_now(self) -> bool:
        """Write the queue's head packets straight to the transport while it takes them;
        True when the queue is empty after."""
        session = self._session
        direct = session._sioctl_direct
        if direct is None:
            return False
        queue = session.queue
        protocol = direct.protocol
        while queue.qsize():
            # ws_frame.can_write_now, spelled out as in AsyncSharedWrites.write_frame_now
            # (the session's closing does not matter here: what is queued is written).
            if not session.upgraded or session.upgrading or session._sioctl_writing \
                    or protocol.disconnected or protocol.close_sent \
                    or not protocol.writable.is_set() or protocol.transport.is_closing():
                return False
            pkt = queue.peek()
            frame = ws_frame.shared_frame(pkt) if pkt is not None else None
            if frame is None:
                return False  # the end marker, or a packet framed another way (EIO=3)
            queue.get_nowait()
            queue.task_done()
            protocol.transport.write(frame)
        return True

    async def finish(self) -> None:
        """The reader has ended: the queue is closed with ``None``, what is queued before it is
        written (by the running task, else here) and the websocket closed."""
        self._finishing = True
        self._session.queue.put_nowait(None)
        if self._task is not None:
            await self._task
        if not self._ended:
            await self._drain()

    async def _run(self) -> None:
        try:
            await self._drain()
        finally:
            self._task = None

    async def _drain(self) -> None:
        """Send the queue's packets until it is empty (or holds ``None``: then close)."""
        queue, ws = self._session.queue, self._ws
        while not self._ended:
            try:
                pkt = queue.get_nowait()
            except asyncio.QueueEmpty:
                return  # idle again: the next put writes or starts a task
            queue.task_done()
            if pkt is None:
                break
            try:
                if not await _writable(self._session, ws):
                    break
                await ws.send(pkt.encode())
            except BaseException:  # python-engineio's bare except: any failure ends the writes
                break
        self._ended = True
        await ws.close()


async def _writable(session: Any, ws: Any) -> bool:
    """Whether the transport under ``ws`` (uvicorn's protocol) takes writes, now or once it
    does; False, the transport aborted, when its buffer did not shrink for ``ping_interval +
    ping_timeout`` (a close would wait to flush what the client does not read; the rule is
    :mod:`.core.write_stall`'s)."""
    protocol: Any = getattr(getattr(ws, "asgi_send", None), "__self__", None)
    writable = getattr(protocol, "writable", None)
    if writable is None or writable.is_set():
        return True
    server = session.server
    span = write_stall.stall_span(server.ping_interval, server.ping_timeout)
    transport = protocol.transport
    # The kernel's send queue counted (a slow reader's progress shows there first).
    left = write_stall.transport_unsent(transport)
    while True:
        try:
            await asyncio.wait_for(writable.wait(), span)
            return True
        except asyncio.TimeoutError:
            now = write_stall.transport_unsent(transport)
            if write_stall.progressed(left, now):  # a slow reader: wait on
                left = now
                continue
        write_stall.log_dropped(server.logger, session.sid, span)
        transport.abort()
        return False


async def serve_websocket(session: Any, ws: Any) -> None:
    """Serve ``session`` (an ``AsyncConformantSocket``) on the websocket ``ws`` until either
    ends: the accept (:func:`.async_asgi.accept_websocket`), the upgrade's probe exchange when
    the session is already connected, then every frame read and given to ``session.receive``
    until the client closes, a read fails or waits too long, or the session says it is closed,
    as python-engineio's handler does. Frames are read through the session's guarded
    websocket (``_sioctl_websocket_opens``); an invalid probe is the session's to answer
    (``_sioctl_websocket_refused``). What the session queues is written by an
    :class:`AsyncLazyWriter` (a :class:`.session_queue.SessionQueue`), else by python-
    engineio's writer task. Once established, a websocket of uvicorn's protocol as the worker
    serves it is read from the protocol's callbacks (:mod:`.async_ws_reader`): this returns
    then, and the reader ends the websocket as this would. Returns None (the ASGI app's
    result)."""
    await accept_websocket(ws)
    guarded = session._sioctl_websocket_opens(ws)
    handed_over = False
    try:
        # Everything is in this one coroutine: an idle websocket read by it waits in it, and
        # every coroutine on that chain is held for the connection's life (~250 bytes each).
        server = session.server
        if session.connected:
            if not await _upgrade(session, guarded):
                return
        else:
            session.connected = True
            session.upgraded = True
        lazy, writer_task = _start_writer(session, guarded)
        server.logger.info("%s: Upgrade to websocket successful", session.sid)
        span = server.ping_interval + server.ping_timeout
        deadline = ReadDeadline(span, DeadlineSweep.of(server, span))
        protocol = hand_over_target(guarded)
        if protocol is not None:
            end = functools.partial(_end_reads, session, deadline, lazy, writer_task)
            ProtocolReader(session, guarded, protocol, deadline, end).start()
            handed_over = True
            return
        try:
            while True:
                deadline.waiting()
                try:
                    data = await guarded.wait()
                    if ws_upgrade.frame_too_large(data, server.max_http_buffer_size):
                        raise ValueError("packet is too large")  # as python-engineio
                except asyncio.CancelledError:
                    # The deadline's or the caller's: python-engineio ends the loop on both.
                    deadline.expired()
                    break
                except Exception as exc:
                    if not session.closed:
                        server.logger.info('%s: Unexpected error "%s", closing connection',
                                           session.sid, str(exc))
                    break
                finally:
                    deadline.done()
                if data is None or not await _received(session, data):
                    break  # the client closed the websocket, or the session is closed
        finally:
            deadline.stop()
        await _stop_writer(session, lazy, writer_task)
        await session.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
    except InvalidPacket as exc:
        await session._sioctl_websocket_refused(ws, exc)
    finally:
        if not handed_over:
            session._sioctl_websocket_ends()


async def _end_reads(session: Any, deadline: ReadDeadline, lazy: AsyncLazyWriter | None,
                     writer_task: asyncio.Future[None] | None) -> None:
    """The end of a websocket read from its protocol's callbacks (``ProtocolReader``): what
    :func:`serve_websocket` does after its read loop (whatever ended it: an invalid packet
    too, which the loop's read raised), then what python-engineio's ``handle_request`` does
    after the websocket's handler (a closed session forgotten). (An upgrade's probe, the one
    refusal that leaves the session open, is over before the hand-over.)"""
    server = session.server
    try:
        deadline.stop()
        await _stop_writer(session, lazy, writer_task)
        await session.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
    finally:
        session._sioctl_websocket_ends()
        sockets = getattr(server, "sockets", None)
        if session.closed and sockets is not None and sockets.get(session.sid) is session:
            del sockets[session.sid]


def _start_writer(session: Any, ws: Any) -> tuple[AsyncLazyWriter | None,
                                                   asyncio.Future[None] | None]:
    """The session's writer: an :class:`AsyncLazyWriter` on a SessionQueue (started at once
    if the queue holds the OPEN packet or what was sent during the upgrade), else python-
    engineio's writer task."""
    queue = session.queue
    if not isinstance(queue, SessionQueue):
        return None, asyncio.ensure_future(_writer(session, ws))
    lazy = queue.writer = AsyncLazyWriter(session, ws)
    if queue.qsize():
        lazy.queued()
    return lazy, None


async def _stop_writer(session: Any, lazy: AsyncLazyWriter | None,
                       writer_task: asyncio.Future[None] | None) -> None:
    """The reader has ended: what is queued is written, then the websocket closed."""
    queue = session.queue
    if lazy is not None:
        try:
            await lazy.finish()
        finally:
            queue.writer = None
    elif writer_task is not None:
        await queue.put(None)  # the writer's poll() ends
        await writer_task


async def _received(session: Any, data: Any) -> bool:
    """Give a frame read to the session; False when the session says it is closed."""
    pkt = decoded(session, data)
    return True if pkt is None else await received(session, pkt)


async def _frame(server: Any, ws: Any) -> Any:
    """The next frame's data (None: the client closed); over ``max_http_buffer_size`` is an
    error, as in python-engineio."""
    data = await ws.wait()
    if ws_upgrade.frame_too_large(data, server.max_http_buffer_size):
        raise ValueError("packet is too large")
    return data


async def _upgrade(session: Any, ws: Any) -> bool:
    """The probe exchange of an upgrade (PING probe, PONG probe, NOOP to the pending poll, then
    UPGRADE); False when the websocket is not the session's."""
    server = session.server
    session.upgrading = True  # sends wait for the upgrade
    try:
        probe = await _frame(server, ws)
    except OSError:
        return False
    if not ws_upgrade.is_probe(probe):
        server.logger.info("%s: Failed websocket upgrade, no PING packet", session.sid)
        session.upgrading = False
        return False
    await ws.send(packet.Packet(packet.PONG, data="probe").encode())
    await session.queue.put(packet.Packet(packet.NOOP))  # the pending poll answers
    try:
        data = await _frame(server, ws)
    except OSError:
        session.upgrading = False
        return False
    return ws_upgrade.settle(session, server.logger, data)


async def _writer(session: Any, ws: Any) -> None:
    """Send what the session queues until its poll() ends, then close the websocket (python-
    engineio's writer, unchanged; for a session whose queue is not a SessionQueue)."""
    while True:
        try:
            packets = await session.poll()
        except exceptions.QueueEmpty:
            break
        if not packets:
            break  # the session closed
        try:
            for pkt in packets:
                await ws.send(pkt.encode())
        except BaseException:  # python-engineio's bare except: any failure ends the writer
            break
    await ws.close()
