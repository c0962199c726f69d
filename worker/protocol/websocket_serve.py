"""An eventlet Engine.IO session's websocket, served without a parked writer green thread.

python-engineio's ``Socket._websocket_handler`` starts a writer green thread per websocket that
waits on the session's queue for as long as the websocket lives: for an idle websocket ~10 KiB
(its saved C stack, the green thread's objects and its queue wait's timeout, at least one page
of frame stack; docs/benchmarks-optimizations.md, "Memory per idle websocket"). Most of what an
idle websocket is sent is a ping every ``ping_interval``, and a fan-out's frames go straight to
the socket (``shared_writes.DirectWrites``). :func:`serve_websocket` does what that method
does, but the writer (:class:`LazyWriter`) is a green thread started when something is queued
for the websocket and ending once the queue is empty again.

Re-implemented from python-engineio 4.15's ``Socket._websocket_handler`` (track it: the read
timeout, the upgrade exchange, the writer, the end of the loop). The library contract lists it
as a COPY. Loaded only by eventlet workers' sessions (``eventlet`` is imported on first use).
"""

from __future__ import annotations

from typing import Any

from engineio import exceptions, packet

from .core import ws_upgrade


class LazyWriter:
    """Sends what is queued for one session's websocket, in order, from a green thread that
    runs only while the queue has something.

    The session's queue calls :meth:`queued` after each put (``ping_interval.
    _ExactPingIntervalQueue``). Order: a shared frame goes straight to the socket only when the
    queue is empty and no write is under way (``ws_frame.can_write_now``), and the writer takes
    the queue from its head, so nothing overtakes a queued packet. ``None`` taken off the queue
    ends the websocket (the writer closes it, as python-engineio's does), and so does a failed
    write; nothing is written after that.
    """

    __slots__ = ("_session", "_ws", "_running", "_ended", "_finishing", "_exited")

    def __init__(self, session: Any, ws: Any) -> None:
        self._session = session
        self._ws = ws  # what the writer sends through (guarded_websocket.GuardedWebSocket)
        self._running = False  # a writer green thread is started and has not ended
        self._ended = False  # the websocket is closed by the writer: nothing more is written
        self._finishing = False  # the reader has ended: it drains the queue itself
        self._exited: Any = None  # an event the reader waits on for a running writer's end

    def queued(self) -> None:
        """Something was put on the session's queue: start a writer unless one runs. Called
        from any green thread, and from the hub (a ping timer): it never blocks."""
        if self._running or self._ended or self._finishing:
            return
        self._running = True
        from eventlet import spawn_n  # only here: the module must not load eventlet

        spawn_n(self._run)

    def finish(self) -> None:
        """The reader has ended: the queue is closed with ``None``, what is queued before it is
        written (by the running writer, else here) and the websocket closed."""
        self._finishing = True
        self._session.queue.put(None)
        if self._running:
            from eventlet.event import Event

            self._exited = Event()
            self._exited.wait()
        if not self._ended:
            self._drain()

    def _run(self) -> None:
        try:
            self._drain()
        finally:
            self._running = False
            exited, self._exited = self._exited, None
            if exited is not None:
                exited.send()

    def _drain(self) -> None:
        """Write the queue's packets until it is empty (or holds ``None``: then close)."""
        queue, ws = self._session.queue, self._ws
        empty = self._session.server.get_queue_empty_exception()
        while not self._ended:
            try:
                pkt = queue.get(block=False)
            except empty:
                return  # idle again: the next put starts a writer
            queue.task_done()
            if pkt is None:
                break
            try:
                ws.send(pkt.encode())
            except Exception:  # as python-engineio's writer: any failure ends the writes
                break
        self._ended = True
        ws.close()


def serve_websocket(session: Any, ws: Any) -> list[Any]:
    """Serve ``session`` (a ``Socket`` whose queue calls its writer, see :class:`LazyWriter`)
    on ``ws`` until either ends: the upgrade's probe exchange when the session is already
    connected, then every frame read and given to ``session.receive``, as python-engineio's
    handler does. Returns the (empty) WSGI response."""
    server = session.server
    # A read waits at most ping_interval + ping_timeout (python-engineio's socket timeout).
    for attr in ("_sock", "socket"):
        sock = getattr(ws, attr, None)
        if sock is not None and hasattr(sock, "settimeout"):
            sock.settimeout(server.ping_interval + server.ping_timeout)
    if session.connected:
        if not _upgrade(session, ws):
            return []
    else:
        session.connected = True
        session.upgraded = True
    writer = LazyWriter(session, ws)
    session.queue.writer = writer
    if session.queue.qsize():
        writer.queued()  # sent during the upgrade
    server.logger.info("%s: Upgrade to websocket successful", session.sid)
    try:
        _read_frames(session, ws)
    finally:
        writer.finish()
        session.queue.writer = None
    session.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
    return []


def _read_frames(session: Any, ws: Any) -> None:
    """Read frames and hand each to the session until the client closes, a read fails, or the
    session says it is closed or fails to take one."""
    server = session.server
    while True:
        try:
            data = _frame(server, ws)
        except Exception as exc:
            if not session.closed:
                server.logger.info('%s: Unexpected error "%s", closing connection',
                                   session.sid, str(exc))
            return
        if data is None:
            return  # the client closed the websocket
        try:
            session.receive(packet.Packet(encoded_packet=data))
        except exceptions.UnknownPacketError:
            pass
        except exceptions.SocketIsClosedError:
            server.logger.info("Receive error -- socket is closed")
            return
        except Exception:  # as python-engineio: log it and end the connection
            server.logger.exception("Unknown receive error")
            return


def _frame(server: Any, ws: Any) -> Any:
    data = ws.wait()
    if ws_upgrade.frame_too_large(data, server.max_http_buffer_size):
        raise ValueError("packet is too large")
    return data


def eventlet_message_reader(ws: Any) -> Any:
    """A function that reads ``ws``'s next message as its ``wait()`` does, without the
    generator behind it, or None when ``ws`` is not eventlet's RFC 6455 websocket (or
    overrides ``wait``).

    eventlet's ``RFC6455WebSocket.wait()`` takes the next message from a generator
    (``_iter_frames``); resuming a generator is a C-level call in CPython 3.11, which starts a
    new evaluation loop, and an idle websocket's reader waits under it: ~0.7 KiB more of saved
    C stack per idle websocket (worker/calls.py). :func:`_next_message` is that generator's
    body as a function (a COPY in the library contract). The generator itself is let go of
    (``ws.wait()`` returns None from then on): never started, its frame would hold ``ws`` in
    a reference cycle, which only the cyclic garbage collector would free after the websocket
    ends (docs/design.md, "Memory after mass disconnects")."""
    from eventlet import websocket

    if getattr(type(ws), "wait", None) is not websocket.RFC6455WebSocket.wait:
        return None
    ws.iterator = iter(())
    global _CLOSED, _FAILED
    _CLOSED, _FAILED = websocket.ConnectionClosedError, websocket.FailedConnectionError
    return _next_message


_CLOSED: Any = None  # eventlet.websocket.ConnectionClosedError, once loaded
_FAILED: Any = None  # eventlet.websocket.FailedConnectionError


def _next_message(ws: Any) -> Any:
    """The next message of eventlet's websocket ``ws`` (text or bytes), answering the control
    frames before it; None once the websocket is closed. Re-implemented from eventlet
    0.41's ``RFC6455WebSocket._iter_frames``: the same frames, the same close frames sent on a
    protocol error (1002...) or an error of the read (1011, then raised). Between two messages
    that generator holds no state (a fragmented message is finished before it yields)."""
    fragmented = None
    try:
        while True:
            message = ws._recv_frame(message=fragmented)
            if message.opcode & 8:
                ws._handle_control_frame(message.opcode, message.getvalue())
                continue
            if fragmented and message is not fragmented:
                raise RuntimeError("Unexpected message change.")
            fragmented = message
            if message.finished:
                return message.getvalue()
    except _FAILED as exc:
        ws.close(close_data=(exc.status, exc.message))
        return None
    except _CLOSED:
        return None
    except Exception:
        ws.close(close_data=(1011, "Internal Server Error"))
        raise


def _upgrade(session: Any, ws: Any) -> bool:
    """The probe exchange of an upgrade (PING probe, PONG probe, NOOP to the pending poll, then
    UPGRADE); False when the websocket is not the session's. A failed read raises, as in
    python-engineio's sync handler."""
    server = session.server
    session.upgrading = True  # sends wait in the queue until the upgrade ends
    if not ws_upgrade.is_probe(_frame(server, ws)):
        server.logger.info("%s: Failed websocket upgrade, no PING packet", session.sid)
        session.upgrading = False
        return False
    ws.send(packet.Packet(packet.PONG, data="probe").encode())
    session.queue.put(packet.Packet(packet.NOOP))  # the pending poll answers
    data = _frame(server, ws)
    return ws_upgrade.settle(session, server.logger, data)
