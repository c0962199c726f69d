"""Engine.IO v4 session rules on python-engineio's sync session (shell; the rules themselves
are in :mod:`.core.eio_rules` and :mod:`.core.eio_session`).

:class:`ConformantSocket` reads the values off python-engineio's session and request (the WSGI
environ, its body, the websocket's frames), asks the core what to do, and does it with the sync
engine's means: an event the polls wait on, an eventlet hub timer for the next ping, a
``close(wait=False)``. The sessions are :class:`ConformantSocket`\\ s (the server's rules,
:mod:`.engineio_server`, make them so).
"""

from __future__ import annotations

import time
from typing import Any

from engineio import exceptions, packet
from engineio.socket import Socket

from .. import ws_reads
from .core import eio_rules, ws_frame
from .core.eio_rules import DuplicateRequest, InvalidPacket, is_websocket_upgrade
from .core.eio_session import UPGRADE_POLL_WAIT, SessionRules
from .guarded_websocket import GuardedWebSocket
from .websocket_serve import eventlet_message_reader, serve_websocket

# WSGI environ key of a callable the worker's HTTP server provides: the response then closes the
# connection instead of reading and dropping an unread request body (worker/connection.py).
CLOSE_CONNECTION = "sioctl.close_connection"
# Set on the environ of a POST whose body is over max_http_buffer_size: answered 413, not 400
# (by engineio_server.ConformantEngineMixin).
TOO_LARGE = "sioctl.body_too_large"
# WSGI environ key of a callable the worker's HTTP server provides: called with the websocket
# once it is open on the request's connection, it lets go of what only HTTP needed
# (eventlet.wsgi's read and write buffers, 24 KiB per connection; docs/design.md, "Memory per
# idle websocket").
WEBSOCKET_OPENED = "sioctl.websocket_opened"
# WSGI environ key of a callable the worker's HTTP server provides (eventlet): called with a
# function of no arguments that reads the websocket to its end, it takes that reading over.
# The request's green thread then returns (its WSGI and HTTP frames let go of) and a green
# thread started at the hub runs the function, then ends the request and its connection
# (worker/http_server.py; docs/design.md, "Memory per idle websocket").
WEBSOCKET_READER = "sioctl.websocket_reader"


class ReadLater(Exception):
    """Raised by :meth:`ConformantSocket._websocket_handler` once the HTTP server has taken the
    websocket's reading over: it unwinds eventlet's websocket app, which would otherwise send
    the closing frame as its handler returned, up to :meth:`ConformantSocket.
    _upgrade_websocket`, which returns the (empty) response."""


class SessionRulesMixin:
    """What the sync and async sessions share: the core's state machine, and the event the
    polls wait on during an upgrade (``set()`` is a plain call for either engine's event).

    Installed by changing the class of the sessions python-engineio creates, so it adds no
    ``__init__``: the state is made on first use, and the engine's handles live in
    class-level defaults shadowed per instance.
    """

    # While a websocket upgrade is under way (its websocket open): set when it ends, completed
    # or not. None otherwise.
    _upgrade_settled: Any = None

    @property
    def rules(self) -> SessionRules:
        """The session's transport state (the core's state machine)."""
        state: SessionRules | None = self.__dict__.get("_sioctl_rules")
        if state is None:
            state = self.__dict__["_sioctl_rules"] = SessionRules()
        return state

    def upgrade_settled(self) -> None:
        """The upgrade under way has ended (``upgraded`` says how); wake the waiting polls."""
        self.rules.upgrade_settles()
        event, self._upgrade_settled = self._upgrade_settled, None
        if event is not None:
            event.set()

    def checked_websocket_frame(self, frame: str | bytes) -> str | bytes:
        """``check_websocket_frame`` for the engines' guarded websockets: an invalid frame is
        logged (once per kind) before :class:`InvalidPacket` goes on, except during an
        upgrade's probe, whose handler logs it."""
        try:
            return self.check_websocket_frame(frame)  # type: ignore[attr-defined]
        except InvalidPacket as exc:
            if not self.upgrading:  # type: ignore[attr-defined]
                self.server._log_error_once(  # type: ignore[attr-defined]
                    f"closing session {self.sid}: {exc}",  # type: ignore[attr-defined]
                    "sioctl-invalid-ws-packet")
            raise


class ConformantSocket(SessionRulesMixin, Socket):
    """An Engine.IO session that enforces the transport rules of the specification."""

    last_ping: float | None  # python-engineio's: when the last ping went out, None while waiting
    _ping_timer: Any = None  # the hub timer of the next ping (eventlet)
    # The websocket being served (a GuardedWebSocket) while it can take shared frames
    # straight to its socket (eventlet, plain TCP, no compression); None otherwise.
    _sioctl_direct: Any = None
    # Whether python-engineio's writer is in the middle of a write on the websocket.
    _sioctl_writing = False

    def write_shared(self, pkt: packet.Packet) -> None:
        """Send ``pkt``, one packet of a fan-out (the same object for every recipient): its
        websocket frame, encoded once (``ws_frame.shared_frame``), goes straight to the socket
        when the session can take it now (``ws_frame.can_write_now``); what the socket does not
        take at once is queued for the writer, ahead of anything sent later. Otherwise, as
        ``send``: through the queue and python-engineio's writer."""
        self.write_frame(pkt, ws_frame.shared_frame(pkt), time.time(),
                         self.server.logger.isEnabledFor(20))

    def write_frame(self, pkt: packet.Packet, frame: bytes | None, now: float,
                    log: bool) -> bool:
        """``write_shared`` with what is the same for every recipient of a fan-out worked out
        once by the caller (``messaging.fanout.FanoutMixin``): ``frame`` (``shared_frame(pkt)``),
        ``now`` (``time.time()``, for the ping timeout) and ``log`` (INFO enabled on the
        server's logger). It runs once per recipient, so the rule is inlined. True when the
        frame went to the socket (all of it, or its start with the rest queued)."""
        direct = self._sioctl_direct
        # ws_frame.can_write_now: the websocket is the transport, not closing, nothing queued,
        # no write of the writer under way, eventlet's send lock free (no pong being written).
        if direct is None or frame is None or not self.upgraded or self.upgrading \
                or self.closing or self.closed or self._sioctl_writing or direct.pending \
                or direct.sendlock.locked():
            Socket.send(self, pkt)
            return False
        last_ping = self.last_ping
        if last_ping and now - last_ping > self.server.ping_timeout \
                and not self.check_ping_timeout():  # closes the session, as send() does
            return False
        try:
            written = direct.raw.send(frame)
        except BlockingIOError:
            written = 0
        except OSError:
            Socket.send(self, pkt)  # the writer meets the same error and ends the session
            return False
        if written < len(frame):
            direct.hold_for_rest()
            self.queue.put(ws_frame.FrameRest(frame[written:]))
        if log:  # INFO, as python-engineio's send logs it
            self.server.logger.info("%s: Sending packet MESSAGE (shared frame)", self.sid)
        return True

    def send(self, pkt: packet.Packet) -> None:
        """Send ``pkt`` to this client alone (an ack, an emit to its sid, a ping): on a
        websocket that can take it now, its frame is written straight to the socket by the
        sending green thread (the rule and the partial write of :meth:`write_frame`), without
        the queue and a writer green thread; otherwise python-engineio's ``send`` queues it.
        Never blocks (the ping timer calls it from the hub)."""
        if self._sioctl_direct is None or type(pkt) is not packet.Packet:
            Socket.send(self, pkt)
            return
        if self.write_frame(pkt, ws_frame.packet_frame(pkt), time.time(), False):
            logger = self.server.logger
            if logger.isEnabledFor(20):  # INFO, as python-engineio's send logs it
                logger.info("%s: Sending packet %s data %s", self.sid,
                            packet.packet_names[pkt.packet_type],
                            pkt.data if not isinstance(pkt.data, bytes) else "<binary>")

    def wait_for_upgrade(self) -> None:
        """If an upgrade is under way, wait (at most UPGRADE_POLL_WAIT) for it to end."""
        event = self._upgrade_settled
        if event is not None:
            event.wait(timeout=UPGRADE_POLL_WAIT)

    def receive(self, pkt: packet.Packet) -> None:
        self.rules.received(pkt.packet_type)
        super().receive(pkt)

    def schedule_ping(self) -> None:
        """Send the next ping after ``ping_interval`` from a hub timer.

        python-engineio parks a green thread in ``sleep(ping_interval)`` for every session
        between two pings; a parked green thread keeps its stack, about 10 KiB, so that was a
        sixth of an idle websocket's memory (docs/benchmarks.md, idle connections). Under
        eventlet a timer does the same wait for a few hundred bytes; other async modes keep
        python-engineio's way.
        """
        if self.server.async_mode != "eventlet":
            super().schedule_ping()
            return
        now = time.monotonic()
        due = self.rules.schedule_ping(bool(self.last_ping), now, self.server.ping_interval)
        if due is not None:
            self.last_ping = None
            from eventlet.hubs import get_hub  # only here: this module must not load eventlet

            self._ping_timer = get_hub().schedule_call_global(due - now, self._ping_now)

    def close(self, *args: Any, **kwargs: Any) -> None:
        """python-engineio's close, and the pending ping timer cancelled: the timer holds the
        session (its queue, its websocket's buffers) for up to ``ping_interval`` after the
        client has gone, which after a mass disconnect was every closed session at once."""
        try:
            super().close(*args, **kwargs)
        finally:
            self.rules.cancel_ping()
            timer, self._ping_timer = self._ping_timer, None
            if timer is not None:
                timer.cancel()

    def _ping_now(self) -> None:
        """The timer's end: python-engineio's ``_send_ping`` without its sleep. It runs in the
        hub, so it must not block: queueing the packet does not."""
        self._ping_timer = None
        try:
            if self.rules.ping_fires(self.closing or self.closed):
                self.last_ping = time.time()
                self.send(packet.Packet(packet.PING))
        except Exception:  # the hub would print it and go on; say it in our log instead
            self.server.logger.exception("%s: sending a ping failed", self.sid)

    def handle_get_request(self, environ: dict[str, Any], start_response: Any) -> Any:
        if is_websocket_upgrade(environ):
            return super().handle_get_request(environ, start_response)
        # (python-engineio leaves a second GET waiting forever.)
        try:
            self.rules.begin_get()
        except DuplicateRequest:
            self._close_for_error("a second concurrent GET")
            raise
        try:
            self._expire_if_silent()
            packets = super().handle_get_request(environ, start_response)
        except BaseException:
            self.rules.abort_get()
            raise
        return self.rules.end_get(packets)

    def handle_post_request(self, environ: dict[str, Any]) -> None:
        try:
            self.rules.begin_post()
        except DuplicateRequest:
            self._close_for_error("a second concurrent POST")
            raise
        try:
            self._expire_if_silent()
            raw = self._read_body(environ)
            try:
                packets = self.decode_post_body(raw, environ)
            except InvalidPacket:
                # An invalid packet closes the session (the official test suite, "closes the
                # session upon invalid packet format"); python-engineio answered 200 or hung.
                self._close_for_error("an invalid packet")
                raise
            for pkt in packets:
                self.receive(pkt)
        finally:
            self.rules.end_post()

    def _expire_if_silent(self) -> None:
        """Protocol > Heartbeat: a client that has not answered the last ping within
        ``pingTimeout`` is gone. python-engineio notices in a periodic sweep, so a request that
        comes in between would still be served; here it gets the 400 of a closed session (as
        the official test suite expects: "closes the session upon ping timeout")."""
        if not self.check_ping_timeout():
            raise exceptions.SocketIsClosedError("ping timeout")

    def decode_post_body(self, raw: bytes, environ: dict[str, Any]) -> list[packet.Packet]:
        """The packets of a POST body (Engine.IO v4 framing); raises :class:`InvalidPacket`."""
        return eio_rules.decode_post_body(raw)

    def check_websocket_frame(self, frame: str | bytes) -> str | bytes:
        """The frame python-engineio should see for one a client sent on the websocket;
        raises :class:`InvalidPacket` for one it may not send."""
        return eio_rules.check_websocket_frame(frame, self.upgrading)

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        limit = self.server.max_http_buffer_size
        try:
            size = eio_rules.body_read_size(
                environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked",
                environ.get("CONTENT_LENGTH"), limit)
            raw = environ["wsgi.input"].read(size)
            eio_rules.check_body_size(len(raw), limit)
        except InvalidPacket:
            self._close_for_error("an invalid Content-Length")
            raise
        except exceptions.ContentTooLongError:
            # Refused before reading a byte of it when it says its size; the response closes
            # the connection so the body is not read afterwards either.
            self._refuse_too_large(environ)
            raise
        return bytes(raw)

    def _refuse_too_large(self, environ: dict[str, Any]) -> None:
        """Close the session; the request gets a 413 and its connection closes."""
        environ[TOO_LARGE] = True
        close_connection = environ.get(CLOSE_CONNECTION)
        if callable(close_connection):
            close_connection()
        self._close_for_error("an oversized payload")

    def _close_for_error(self, what: str) -> None:
        """Close the session now, without waiting for its queue to drain.

        python-engineio's own error path calls ``disconnect()``, which waits for the queue to
        be read by a GET that may never come: the request then hangs. This close does not wait;
        the server's ``disconnect()`` that follows finds the session closed and only forgets it.
        """
        self.server._log_error_once(
            f"closing session {self.sid}: {what}", f"sioctl-protocol-{what}"
        )
        self.close(wait=False, abort=False, reason=self.server.reason.TRANSPORT_ERROR)

    def _upgrade_websocket(self, environ: dict[str, Any], start_response: Any) -> Any:
        """python-engineio's upgrade (eventlet's websocket app runs ``_websocket_handler`` on
        the accepted websocket); when the HTTP server has taken the reading over
        (:class:`ReadLater`), the response is what eventlet's app returns for a websocket: no
        bytes, none written (the handshake was)."""
        try:
            return super()._upgrade_websocket(environ, start_response)
        except ReadLater:
            from eventlet import wsgi  # only here: this module must not load eventlet

            wsgi.WSGI_LOCAL.already_handled = True  # what eventlet's websocket app sets
            return []

    def _websocket_handler(self, ws: Any) -> Any:
        """Serve the websocket with every incoming frame checked first.

        python-engineio decodes frames outside any error handling: a malformed one raises out of
        the handler, and eventlet then writes an ``HTTP/1.1 500`` status line onto the upgraded
        connection. Frames of a type a client may not send are silently dropped there. Here
        both close the session and the websocket (the official test suite: "closes the session
        upon invalid packet format").

        Under eventlet, when the HTTP server offers it (``WEBSOCKET_READER``), the websocket is
        read from a green thread of its own started at the hub, and the request's green thread
        returns at once (:class:`ReadLater`): an idle websocket then waits at a shallow stack
        instead of under the whole HTTP and WSGI call chain.
        """
        lazy_writer = self.server.async_mode == "eventlet" and hasattr(self.queue, "writer")
        messages = None
        if self.server.async_mode == "eventlet":
            ws_reads.buffer_reads(ws, self)  # eventlet's websocket: one recv per burst of frames
            messages = eventlet_message_reader(ws)
        environ = getattr(ws, "environ", None) or {}
        opened = environ.get(WEBSOCKET_OPENED)
        if opened is not None:
            # The handshake is written: HTTP's buffers are not needed any more (and the
            # websocket may be trimmed before anything holds its parts).
            opened(ws)
        guarded = GuardedWebSocket(ws, self, messages)
        if self.rules.websocket_opens(self.connected, self.upgraded):
            # An upgrade (python-engineio's test): polling requests wait for its end from now.
            self._upgrade_settled = self.server.create_event()
        if guarded.raw is not None:
            self._sioctl_direct = guarded
        read_later = environ.get(WEBSOCKET_READER) if lazy_writer else None
        if read_later is not None:
            read_later(guarded.read_to_end)
            raise ReadLater
        return self._serve_websocket(ws, guarded, lazy_writer)

    def _read_websocket(self, ws: Any, guarded: GuardedWebSocket) -> None:
        """The websocket read to its end in the reader's own green thread, then what eventlet's
        websocket app and python-engineio do once their handler returns: the closing frame
        sent, the closed session forgotten."""
        try:
            self._serve_websocket(ws, guarded, True)
        except OSError as exc:  # as eventlet's websocket app: a client gone is no error
            from eventlet.support import get_errno
            from eventlet.websocket import ACCEPTABLE_CLIENT_ERRORS

            if get_errno(exc) not in ACCEPTABLE_CLIENT_ERRORS:
                raise
        finally:
            if self.closed and self.server.sockets.get(self.sid) is self:
                del self.server.sockets[self.sid]
        ws._send_closing_frame(True)

    def _serve_websocket(self, ws: Any, guarded: GuardedWebSocket, lazy_writer: bool) -> Any:
        try:
            if lazy_writer:  # no writer green thread parked per websocket
                return serve_websocket(self, guarded)
            return super()._websocket_handler(guarded)
        except InvalidPacket as exc:
            # Raised during the upgrade's probe exchange, outside python-engineio's read loop:
            # the probe websocket is closed and the session goes on over polling.
            self.upgrading = False
            self.server._log_error_once(
                f"closing the upgrade websocket of {self.sid}: {exc}", "sioctl-invalid-probe"
            )
            ws.close()
            return []
        finally:
            self._sioctl_direct = None
            guarded.release_rest()
            if self.server.async_mode == "eventlet":
                ws_reads.release(ws)  # the fd's parked hub listener, if the reads left one
            self.upgrade_settled()
