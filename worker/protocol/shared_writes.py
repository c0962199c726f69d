"""Shared frames written straight to a websocket (issue 19, the broadcast write path; the
frame and the rule are :mod:`.core.ws_frame`'s): the engines' halves of the session's
websocket wrapper (``guarded_websocket.GuardedWebSocket``, ``async_engineio.
_AsyncGuardedWebSocket``), which python-engineio's writer also sends through.

- eventlet (:class:`DirectWrites`): the frame goes to the non-blocking OS socket under
  eventlet's green socket with one ``send``; what the socket does not take at once is queued
  (``ws_frame.FrameRest``) and the writer writes it as it is, eventlet's send lock held from
  the first byte to the last so that no pong of the reader lands inside the frame.
- asyncio (:class:`AsyncDirectWrites`): the frame goes to the transport of uvicorn's
  websockets-sansio protocol, which buffers what the socket does not take; the protocol's
  ``writable`` event (cleared over the transport's high-water mark) sends the next frames to
  the queue instead, where python-engineio's writer waits for it.

Neither is used under TLS, with permessage-deflate (frames differ per socket) or with another
websocket implementation: those sessions keep python-engineio's queue and writer.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from engineio import packet

from .core import ws_frame


class DirectWrites:
    """The eventlet websocket wrapper's direct writes (see the module docstring)."""

    _ws: Any
    _session: Any

    def _direct_init(self, ws: Any) -> None:
        # eventlet's send lock, while a shared frame's rest waits in the queue.
        self._rest_lock: Any = None
        # Read once per recipient of every fan-out (ConformantSocket.write_frame), so kept at
        # hand: eventlet's send lock, and the deque under the session's queue (its length is
        # the queue's qsize(), without two Python calls through the queue wrappers).
        self.sendlock: Any = getattr(ws, "_sendlock", None)
        self.pending: Any = queued_items(self._session.queue)
        self.raw = plain_socket(ws) if self.pending is not None else None

    def hold_for_rest(self) -> None:
        """A shared frame went out in part: hold eventlet's send lock until the writer has
        written the rest (``send`` of the :class:`ws_frame.RawFrame`)."""
        if self._rest_lock is None and self._ws._sendlock.acquire(blocking=False):
            self._rest_lock = self._ws._sendlock

    def release_rest(self) -> None:
        """Let go of the send lock ``hold_for_rest`` took, if held."""
        lock, self._rest_lock = self._rest_lock, None
        if lock is not None:
            lock.release()

    def send(self, message: Any) -> None:
        """python-engineio's writer sends ``message``: a packet's encoding (framed by eventlet)
        or the rest of a shared frame (written as it is, the send lock held since its start)."""
        session = self._session
        session._sioctl_writing = True
        try:
            if isinstance(message, ws_frame.RawFrame):
                try:
                    self._ws.socket.sendall(message)
                finally:
                    self.release_rest()
            else:
                self._ws.send(message)
        finally:
            session._sioctl_writing = False


class AsyncDirectWrites:
    """The asyncio websocket wrapper's direct writes (see the module docstring)."""

    _ws: Any
    _session: Any

    def _direct_init(self, ws: Any) -> None:
        self.protocol = sansio_protocol(ws)
        # Asked once per recipient of every fan-out (AsyncSharedWrites.write_frame_now): the
        # session queue's qsize, without the call through sioctl's wrapper of it.
        queue = self._session.queue
        self.qsize: Any = getattr(queue, "_queue", queue).qsize

    async def send(self, message: Any) -> None:
        """python-engineio's writer sends ``message`` (uvicorn frames it), or frames made
        already (a ``ws_frame.RawFrame``: the frames of one socket held over a burst of Redis
        messages, ``messaging.bursts``), written to the transport as they are, under the
        same flow control as uvicorn's ``send``."""
        session = self._session
        session._sioctl_writing = True
        try:
            protocol = self.protocol
            if isinstance(message, ws_frame.RawFrame) and protocol is not None:
                await protocol.writable.wait()
                if protocol.disconnected or protocol.close_sent:
                    raise ConnectionError("the websocket is closed")
                protocol.transport.write(message)
            else:
                await self._ws.send(message)
        finally:
            session._sioctl_writing = False


def plain_socket(ws: Any) -> Any:
    """The plain, non-blocking OS socket under eventlet websocket ``ws`` when shared frames can
    be written to it directly (RFC 6455, no permessage-deflate, no TLS); None otherwise."""
    if getattr(ws, "version", None) not in (8, 13) or getattr(ws, "extensions", None):
        return None
    # eventlet's green socket wraps the OS socket (GreenSocket.fd, non-blocking); under TLS
    # that is an ssl.SSLSocket, whose writes must go through TLS: not written to directly.
    raw: Any = getattr(ws, "socket", None)
    for _ in range(3):  # a green socket may wrap another green socket
        inner = getattr(raw, "fd", None)
        if inner is None or isinstance(inner, int):
            break
        raw = inner
    kind = type(raw)
    if (kind.__module__, kind.__name__) != ("socket", "socket") or raw.gettimeout() != 0.0 \
            or not hasattr(ws, "_sendlock"):
        return None
    return raw


def queued_items(queue: Any) -> Any:
    """The deque of what waits in session queue ``queue`` (eventlet's ``LightQueue.queue``,
    under sioctl's ``_ExactPingIntervalQueue``), whose length is the queue's ``qsize()``; None
    for another queue (the session then keeps python-engineio's writer)."""
    inner = getattr(queue, "_queue", queue)
    items = getattr(inner, "queue", None)
    return items if isinstance(items, collections.deque) else None


def sansio_protocol(ws: Any) -> Any:
    """uvicorn's websockets-sansio protocol under python-engineio's ASGI websocket ``ws`` when
    shared frames can be written to its transport directly (no permessage-deflate: compressed
    frames differ per socket); None otherwise (another server or websocket implementation)."""
    protocol = getattr(getattr(ws, "asgi_send", None), "__self__", None)
    if not is_sansio_protocol(protocol):
        return None
    conn = getattr(protocol, "conn", None)
    if conn is None or getattr(conn, "extensions", None) or \
            not hasattr(protocol, "writable") or not hasattr(protocol, "close_sent"):
        return None
    return protocol


_SANSIO = ("uvicorn.protocols.websockets.websockets_sansio_impl", "WebSocketsSansIOProtocol")


def is_sansio_protocol(protocol: Any) -> bool:
    """Whether ``protocol`` is uvicorn's websockets-sansio protocol or a subclass of it (the
    asyncio worker serves websockets with one: ``worker/aio/ws_protocol``'s lean class, whose
    own name differs; a check of the name alone turned every direct write off)."""
    return any((kind.__module__, kind.__name__) == _SANSIO for kind in type(protocol).__mro__)


class AsyncSharedWrites:
    """The asyncio session's half of a fan-out (mixed into ``AsyncConformantSocket``)."""

    closed: bool
    closing: bool
    upgraded: bool
    upgrading: bool
    last_ping: float | None
    server: Any
    queue: Any
    sid: str
    # The websocket being served while shared frames can go straight to its transport
    # (uvicorn's websockets-sansio protocol, no compression); None otherwise.
    _sioctl_direct: Any = None
    # Whether python-engineio's writer is in the middle of a write on the websocket.
    _sioctl_writing = False

    async def send(self, pkt: packet.Packet) -> None:
        """python-engineio's ``send`` (a MESSAGE of this session alone: an ack, an emit to
        its sid), with the frame written straight to the transport when the session can take
        it now, as a fan-out's (``write_frame_now``): python-engineio's writer task is then
        not woken for it (a wake-up, a ``poll`` and the ASGI send's layers per message). What
        cannot go now, and every other packet, goes through python-engineio's ``send``."""
        if pkt.packet_type == packet.MESSAGE and self._sioctl_direct is not None and \
                self.write_frame_now(pkt, ws_frame.shared_frame(pkt), time.time(), False):
            # python-engineio's send logs it so (Logger.info asks isEnabledFor itself)
            self.server.logger.info("%s: Sending packet MESSAGE data %s", self.sid,
                                    "<binary>" if isinstance(pkt.data, bytes) else pkt.data)
            return
        await super().send(pkt)  # type: ignore[misc]

    def write_shared_now(self, pkt: packet.Packet) -> bool:
        """Send ``pkt``, one packet of a fan-out (the same object for every recipient),
        without awaiting: its websocket frame, encoded once (``ws_frame.shared_frame``),
        written to the transport when the session can take it now (``ws_frame.
        can_write_now``), else the packet queued for python-engineio's writer or long-poll as
        ``send`` queues it. False (nothing done: the caller awaits python-socketio's
        ``_send_eio_packet``) for a session that is closing or past its ping timeout, whose
        ``send`` closes it or says so."""
        return self.write_frame_now(pkt, ws_frame.shared_frame(pkt), time.time(),
                                    self.server.logger.isEnabledFor(20))

    def write_frame_now(self, pkt: packet.Packet, frame: bytes | None, now: float,
                        log: bool) -> bool:
        """``write_shared_now`` with what is the same for every recipient of a fan-out worked
        out once by the caller (``messaging.fanout.AsyncFanoutMixin``): ``frame``
        (``shared_frame(pkt)``), ``now`` (``time.time()``) and ``log`` (INFO enabled on the
        server's logger). It runs once per recipient, so the rule is inlined."""
        if self.closed or self.closing:
            return False
        last_ping = self.last_ping
        if last_ping and now - last_ping > self.server.ping_timeout:
            return False
        direct = self._sioctl_direct
        # ws_frame.can_write_now (closing is answered above): the websocket is the transport
        # and open, nothing queued, no write of the writer under way, the transport under its
        # high-water mark.
        if direct is None or frame is None or not self.upgraded or self.upgrading \
                or self._sioctl_writing or direct.qsize():
            self.queue.put_nowait(pkt)
        else:
            protocol = direct.protocol
            if protocol.disconnected or protocol.close_sent or \
                    not protocol.writable.is_set() or protocol.transport.is_closing():
                self.queue.put_nowait(pkt)
            else:
                protocol.transport.write(frame)
        if log:  # INFO, as python-engineio's send logs it
            self.server.logger.info("%s: Sending packet MESSAGE (fan-out)", self.sid)
        return True
