"""Engine.IO v4 rules that python-engineio does not enforce, added around it.

Each rule names the section of the Engine.IO v4 specification (socketio/engine.io-protocol,
README) it implements. python-engineio keeps doing all the work; this module answers the
requests it would answer wrongly, validates what clients send before it sees it, and closes a
session where the specification says so. The sessions are :class:`ConformantSocket`s (the
server's rules, :mod:`.engineio_server`, make them so).
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from engineio import exceptions, packet
from engineio.socket import Socket

# Packet types a client may send. OPEN and NOOP only ever go from server to client, and since v4
# so does PING (Protocol > Heartbeat), except for the "probe" of an upgrade (Protocol > Upgrade).
CLIENT_POLLING_TYPES = frozenset({packet.CLOSE, packet.PONG, packet.MESSAGE})
CLIENT_WEBSOCKET_TYPES = frozenset({packet.CLOSE, packet.PONG, packet.MESSAGE, packet.UPGRADE})
RECORD_SEPARATOR = "\x1e"
# How long a polling request that comes during an upgrade (its websocket open) waits for the
# upgrade packet: the reference server answers such a poll with a noop at its next check of the
# upgrade, every 100 ms; a client that sent the upgrade packet first gets the 400 of an upgraded
# session instead, however soon after it polls.
UPGRADE_POLL_WAIT = 0.1
# WSGI environ key of a callable the worker's HTTP server provides: the response then closes the
# connection instead of reading and dropping an unread request body (worker/connection.py).
CLOSE_CONNECTION = "sioctl.close_connection"
# Set on the environ of a POST whose body is over max_http_buffer_size: answered 413, not 400
# (by engineio_server.ConformantEngineMixin).
TOO_LARGE = "sioctl.body_too_large"


class InvalidPacket(exceptions.EngineIOError):
    """What a client sent is not an Engine.IO packet it may send; the session is closed."""


class DuplicateRequest(exceptions.EngineIOError):
    """A second GET or POST while one is active on the same session; the session is closed."""


def decode_packet(encoded: str | bytes) -> packet.Packet:
    """Decode one Engine.IO packet; raises :class:`InvalidPacket` with the reason."""
    if isinstance(encoded, str) and (not encoded or not encoded[0].isdigit()) \
            and not encoded.startswith("b"):
        raise InvalidPacket(f"not an Engine.IO packet: {encoded[:20]!r}")
    if isinstance(encoded, str) and encoded.startswith("b"):
        try:
            # python-engineio's decoder skips characters outside the alphabet.
            base64.b64decode(encoded[1:], validate=True)
        except (binascii.Error, ValueError):  # ValueError: not ASCII ("bé")
            raise InvalidPacket("binary packet is not valid base64") from None
    try:
        return packet.Packet(encoded_packet=encoded)
    except (ValueError, binascii.Error, IndexError) as exc:
        raise InvalidPacket(f"undecodable Engine.IO packet ({exc})") from None


def decode_payload(body: str) -> list[packet.Packet]:
    """Decode a polling payload (Packet encoding > HTTP long-polling): packets separated by
    ``\\x1e``, binary ones as ``b`` + base64. An empty body or any bad packet is invalid.

    python-engineio also refuses payloads of more than 16 packets and then drops every packet
    in them while answering 200; a client that batches more (engine.io-client sends up to
    ``maxPayload`` bytes) must not lose messages, so only the byte limit applies here.
    """
    if not body:
        raise InvalidPacket("empty payload")
    packets = [decode_packet(encoded) for encoded in body.split(RECORD_SEPARATOR)]
    for pkt in packets:
        if pkt.packet_type not in CLIENT_POLLING_TYPES:
            raise InvalidPacket(f"packet type {pkt.packet_type} may not be sent by a client")
    return packets


class ConformantSocket(Socket):
    """An Engine.IO session that enforces the transport rules of the specification.

    Installed by changing the class of the sessions python-engineio creates, so it adds no
    ``__init__``; its own state lives in class-level defaults shadowed per instance.
    """

    last_ping: float | None  # python-engineio's: when the last ping went out, None while waiting
    _ping_timer: Any = None  # the hub timer of the next ping (eventlet)
    _get_active = False
    _post_active = False
    _closed_by_client = False
    # While a websocket upgrade is under way (its websocket open): set when it ends, completed
    # or not. None otherwise.
    _upgrade_settled: Any = None

    def upgrade_settled(self) -> None:
        """The upgrade under way has ended (``upgraded`` says how); wake the waiting polls."""
        event, self._upgrade_settled = self._upgrade_settled, None
        if event is not None:
            event.set()

    def wait_for_upgrade(self) -> None:
        """If an upgrade is under way, wait (at most UPGRADE_POLL_WAIT) for it to end."""
        event = self._upgrade_settled
        if event is not None:
            event.wait(timeout=UPGRADE_POLL_WAIT)

    def receive(self, pkt: packet.Packet) -> None:
        if pkt.packet_type == packet.CLOSE:
            self._closed_by_client = True
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
        if self.last_ping:  # python-engineio's rule: one wait cycle at a time
            self.last_ping = None
            from eventlet.hubs import get_hub  # only here: this module must not load eventlet

            self._ping_timer = get_hub().schedule_call_global(
                self.server.ping_interval, self._ping_now)

    def close(self, *args: Any, **kwargs: Any) -> None:
        """python-engineio's close, and the pending ping timer cancelled: the timer holds the
        session (its queue, its websocket's buffers) for up to ``ping_interval`` after the
        client has gone, which after a mass disconnect was every closed session at once."""
        try:
            super().close(*args, **kwargs)
        finally:
            timer, self._ping_timer = self._ping_timer, None
            if timer is not None:
                timer.cancel()

    def _ping_now(self) -> None:
        """The timer's end: python-engineio's ``_send_ping`` without its sleep. It runs in the
        hub, so it must not block: queueing the packet does not."""
        self._ping_timer = None
        try:
            if not self.closing and not self.closed:
                self.last_ping = time.time()
                self.send(packet.Packet(packet.PING))
        except Exception:  # the hub would print it and go on; say it in our log instead
            self.server.logger.exception("%s: sending a ping failed", self.sid)

    def handle_get_request(self, environ: dict[str, Any], start_response: Any) -> Any:
        if is_websocket_upgrade(environ):
            return super().handle_get_request(environ, start_response)
        # Transports > HTTP long-polling > Receiving data: "a client MUST NOT have more than one
        # active GET request. Should it happen, the server MUST return an HTTP 400 error status
        # and close the session." (python-engineio leaves the second GET waiting forever.)
        if self._get_active:
            self._close_for_error("a second concurrent GET")
            raise DuplicateRequest("a second concurrent GET request")
        self._expire_if_silent()
        self._get_active = True
        try:
            packets = super().handle_get_request(environ, start_response)
        finally:
            self._get_active = False
        if packets == [] and self._closed_by_client:
            # The client's CLOSE packet ended this poll: answer it with a noop, as the
            # reference server does, rather than an empty (undecodable) payload.
            return [packet.Packet(packet.NOOP)]
        return packets

    def handle_post_request(self, environ: dict[str, Any]) -> None:
        # Transports > HTTP long-polling > Sending data: "a client MUST NOT have more than one
        # active POST request. Should it happen, the server MUST return an HTTP 400 error status
        # and close the session."
        if self._post_active:
            self._close_for_error("a second concurrent POST")
            raise DuplicateRequest("a second concurrent POST request")
        self._expire_if_silent()
        self._post_active = True
        try:
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
            self._post_active = False

    def _expire_if_silent(self) -> None:
        """Protocol > Heartbeat: a client that has not answered the last ping within
        ``pingTimeout`` is gone. python-engineio notices in a periodic sweep, so a request that
        comes in between would still be served; here it gets the 400 of a closed session (as
        the official test suite expects: "closes the session upon ping timeout")."""
        if not self.check_ping_timeout():
            raise exceptions.SocketIsClosedError("ping timeout")

    def decode_post_body(self, raw: bytes, environ: dict[str, Any]) -> list[packet.Packet]:
        """The packets of a POST body (Engine.IO v4 framing); raises :class:`InvalidPacket`."""
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPacket("payload is not UTF-8") from None
        return decode_payload(body)

    def check_websocket_frame(self, frame: str | bytes) -> str | bytes:
        """The frame python-engineio should see for one a client sent on the websocket;
        raises :class:`InvalidPacket` for one it may not send (Engine.IO v4: binary frames
        are bare messages, text frames typed packets)."""
        pkt = decode_packet(frame)
        allowed = pkt.packet_type in CLIENT_WEBSOCKET_TYPES or (
            self.upgrading and pkt.packet_type == packet.PING and pkt.data == "probe"
        )
        if not allowed:
            raise InvalidPacket(f"packet type {pkt.packet_type} may not be sent here")
        return frame

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        limit = self.server.max_http_buffer_size
        stream = environ["wsgi.input"]
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            raw = stream.read(limit + 1)
        else:
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                self._close_for_error("an invalid Content-Length")
                raise InvalidPacket("invalid Content-Length") from None
            if length > limit:
                # Refused before reading a byte of it; the response closes the connection so
                # the body is not read afterwards either.
                self._refuse_too_large(environ)
            raw = stream.read(length)
        if len(raw) > limit:
            self._refuse_too_large(environ)
        return bytes(raw)

    def _refuse_too_large(self, environ: dict[str, Any]) -> None:
        """Close the session and raise; the request gets a 413 and its connection closes."""
        environ[TOO_LARGE] = True
        close_connection = environ.get(CLOSE_CONNECTION)
        if callable(close_connection):
            close_connection()
        self._close_for_error("an oversized payload")
        raise exceptions.ContentTooLongError()

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

    def _websocket_handler(self, ws: Any) -> Any:
        """Serve the websocket with every incoming frame checked first.

        python-engineio decodes frames outside any error handling: a malformed one raises out of
        the handler, and eventlet then writes an ``HTTP/1.1 500`` status line onto the upgraded
        connection. Frames of a type a client may not send are silently dropped there. Here
        both close the session and the websocket (the official test suite: "closes the session
        upon invalid packet format").
        """
        guarded = _GuardedWebSocket(ws, self)
        if self.connected and not self.upgraded:
            # An upgrade (python-engineio's test): polling requests wait for its end from now.
            self._upgrade_settled = self.server.create_event()
        try:
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
            self.upgrade_settled()


class _GuardedWebSocket:
    """The websocket python-engineio reads, with each frame validated as it arrives.

    An invalid frame raises :class:`InvalidPacket` from ``wait()``. In python-engineio's read
    loop that ends the loop and closes the session; during an upgrade it reaches
    :meth:`ConformantSocket._websocket_handler`.
    """

    def __init__(self, ws: Any, session: ConformantSocket) -> None:
        self._ws = ws
        self._session = session

    def wait(self) -> Any:
        session = self._session
        if not session.upgrading:
            # python-engineio reads the next frame once the upgrade packet has upgraded the
            # session: the upgrade has ended.
            session.upgrade_settled()
        frame = self._ws.wait()
        if frame is None:
            return None
        try:
            return session.check_websocket_frame(frame)
        except InvalidPacket as exc:
            if not session.upgrading:  # during a probe, the handler logs it
                session.server._log_error_once(
                    f"closing session {session.sid}: {exc}", "sioctl-invalid-ws-packet"
                )
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)


def is_websocket_upgrade(environ: dict[str, Any]) -> bool:
    connection = [s.strip() for s in environ.get("HTTP_CONNECTION", "").lower().split(",")]
    return "upgrade" in connection and environ.get("HTTP_UPGRADE", "").lower() == "websocket"
