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
from typing import Any

from engineio import exceptions, packet

from .core import ws_upgrade


class ReadDeadline:
    """Ends a websocket read that waits longer than ``span`` seconds, as ``asyncio.wait_for``
    around each read did, with one timer per websocket instead of one per read.

    The reader calls :meth:`waiting` before and :meth:`done` after each read. The timer, when
    it fires, cancels the reading task if the read under way has lasted ``span``; otherwise it
    moves itself to when that read (or the next) could first run out. A read that ran out
    raises ``CancelledError`` in the reader, and :meth:`expired` says so.
    """

    def __init__(self, span: float) -> None:
        self._span = span
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._since: float | None = None  # when the read under way began
        self._expired = False
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(
            self._loop.time() + span, self._check)

    def waiting(self) -> None:
        """A read begins."""
        self._since = self._loop.time()

    def done(self) -> None:
        """The read has returned."""
        self._since = None

    def expired(self) -> bool:
        """Whether the timer cancelled the reader (then the cancellation is taken back: it was
        ours, not the caller's)."""
        if not self._expired:
            return False
        uncancel = getattr(self._task, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            uncancel()
        return True

    def stop(self) -> None:
        """No more reads: drop the timer."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()

    def _check(self) -> None:
        now = self._loop.time()
        since = self._since
        if since is not None and now - since >= self._span:
            self._handle = None
            self._expired = True
            if self._task is not None:
                self._task.cancel()
            return
        self._handle = self._loop.call_at((since if since is not None else now) + self._span,
                                          self._check)


async def serve_websocket(session: Any, ws: Any) -> None:
    """Serve ``session`` (an ``AsyncSocket``) on the websocket ``ws`` until either ends: the
    upgrade's probe exchange when the session is already connected, the writer task, then every
    frame read and given to ``session.receive``, as python-engineio's handler does."""
    server = session.server
    if session.connected:
        if not await _upgrade(session, ws):
            return
    else:
        session.connected = True
        session.upgraded = True
    writer_task = asyncio.ensure_future(_writer(session, ws))
    server.logger.info("%s: Upgrade to websocket successful", session.sid)
    deadline = ReadDeadline(server.ping_interval + server.ping_timeout)
    try:
        await _read_frames(session, ws, deadline)
    finally:
        deadline.stop()
    await session.queue.put(None)  # the writer's poll() ends
    await writer_task
    await session.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)


async def _read_frames(session: Any, ws: Any, deadline: ReadDeadline) -> None:
    """Read frames and hand each to the session until the client closes, a read fails or
    waits too long, or the session says it is closed."""
    server = session.server
    while True:
        deadline.waiting()
        try:
            data = await _frame(server, ws)
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
        if data is None:
            break  # the client closed the websocket
        try:
            await session.receive(packet.Packet(encoded_packet=data))
        except exceptions.UnknownPacketError:
            pass
        except exceptions.SocketIsClosedError:
            server.logger.info("Receive error -- socket is closed")
            break
        except Exception:  # as python-engineio: log it and read on
            server.logger.exception("Unknown receive error")


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
    engineio's writer, unchanged)."""
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
