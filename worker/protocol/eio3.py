"""Engine.IO protocol 3 sessions (Socket.IO v2 clients), served beside v4 ones.

python-engineio 4 speaks only protocol 4 and refuses a handshake with ``EIO=3``. With
``allow_eio3`` on, :func:`open_session` opens such a handshake itself, as a
:class:`Eio3Session`: a python-engineio session (same queue, same server, same socket.io
events) whose wire format and heartbeat follow revision 3 (socketio/socket.io,
docs/engine.io-protocol/v3.md; sections named "v3 > ..."). Framing lives in
:mod:`.eio3_payload`; the Socket.IO protocol v4 differences in :mod:`.sio_v4`.

Every later request of the session reaches python-engineio's request handling as usual: the
session object decides how its packets are framed.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlencode

import engineio
from engineio import exceptions, packet

from . import eio3_payload
from .engineio_rules import ConformantSocket, InvalidPacket, decode_packet
from .ping_interval import advertised_ping_interval

PROTOCOL = "3"
# What a client sends on each transport: in v3 the client pings and the server pongs
# (v3 > Encoding > 2 ping, 3 pong), the opposite of v4.
CLIENT_POLLING_TYPES = frozenset({packet.CLOSE, packet.PING, packet.MESSAGE})
CLIENT_WEBSOCKET_TYPES = frozenset({packet.CLOSE, packet.PING, packet.MESSAGE, packet.UPGRADE})
REFUSAL = (
    "Engine.IO protocol 3 (EIO=3, Socket.IO v2 clients) is not enabled on this server; "
    "start it with --allow-eio3 (SIOCTL_ALLOW_EIO3=1) to serve them"
)


# Where a handshake's own query waits while python-engineio's checks see it as EIO=4.
ORIGINAL_QUERY = "sioctl.eio3_query"


def wants_eio3(query: dict[str, list[str]]) -> bool:
    """Whether a request (its parsed query) opens an Engine.IO protocol 3 session."""
    return "sid" not in query and query.get("EIO") == [PROTOCOL]


class Eio3Packet(packet.Packet):
    """A packet queued for a v3 session, encoded the v3 way when python-engineio's websocket
    writer asks (``pkt.encode()``). A copy of what was sent: python-socketio sends the same
    packet object to every session, and python-engineio caches its (v4) encoding on it."""

    def __init__(self, pkt: packet.Packet, session: Eio3Session) -> None:
        super().__init__(pkt.packet_type, pkt.data)
        self._session = session

    def encode(self, b64: bool = False) -> Any:
        return eio3_payload.encode_packet(self, b64 or self._session.websocket_b64)


class Eio3Session(ConformantSocket):
    """An Engine.IO session of protocol 3 (created by :func:`open_session` only)."""

    # Whether polling responses carry binary as base64 (the handshake asked with b64=1).
    b64 = False
    # Whether the websocket asked for binary as base64 text frames (b64=1 on its URL).
    websocket_b64 = False
    last_received = 0.0

    def send(self, pkt: packet.Packet) -> None:
        super().send(Eio3Packet(pkt, self))

    def receive(self, pkt: packet.Packet) -> None:
        # v3 > Timeouts: the server considers the client gone when it "does not receive any
        # data within pingTimeout + pingInterval"; any packet counts.
        self.last_received = time.monotonic()
        if pkt.packet_type == packet.PING:
            # v3 > 2 ping: "Server should answer with a pong packet containing the same data".
            self.send(packet.Packet(packet.PONG, pkt.data))
            return
        super().receive(pkt)

    def schedule_ping(self) -> None:
        """v3 > Timeouts: the client sends the pings; the server never does."""

    def check_ping_timeout(self) -> bool:
        """Close the session when the client sent nothing for pingInterval + pingTimeout
        (v3 > Timeouts); python-engineio's service task asks every session regularly."""
        if self.closed:
            raise exceptions.SocketIsClosedError()
        limit = advertised_ping_interval(self.server) / 1000 + self.server.ping_timeout
        if time.monotonic() - self.last_received > limit:
            self.server.logger.info("%s: no ping from the EIO=3 client, closing", self.sid)
            self.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT)
            return False
        return True

    def poll(self) -> list[packet.Packet]:
        """The queued packets, waiting up to pingInterval + pingTimeout for one.

        A v4 poll always ends within a ping interval (the server's ping); here nothing may
        come, and python-engineio would close the session when the wait ends. An idle v3
        poll is answered with a noop instead: only the heartbeat decides that a client is gone.
        """
        try:
            packets: list[packet.Packet] = super().poll()
        except exceptions.QueueEmpty:
            return [packet.Packet(packet.NOOP)]
        return packets

    def handle_get_request(self, environ: dict[str, Any], start_response: Any) -> Any:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if query.get("transport") == ["websocket"]:
            self.websocket_b64 = "b64" in query
            return super().handle_get_request(environ, start_response)
        packets = super().handle_get_request(environ, start_response)
        return self.polling_response(packets, jsonp_index(query))

    def polling_response(
        self, packets: list[packet.Packet], jsonp: int | None, headers: list[Any] | None = None
    ) -> dict[str, Any]:
        """The response python-engineio sends for a GET: ``packets`` framed the v3 way."""
        body, content_type = eio3_payload.encode_response(packets, self.b64, jsonp)
        return {
            "status": "200 OK",
            "headers": (headers or []) + [("Content-Type", content_type)],
            "response": body,
        }

    def decode_post_body(self, raw: bytes, environ: dict[str, Any]) -> list[packet.Packet]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        packets = eio3_payload.decode_post_body(
            raw, environ.get("CONTENT_TYPE", ""), jsonp=jsonp_index(query) is not None
        )
        for pkt in packets:
            if pkt.packet_type not in CLIENT_POLLING_TYPES:
                raise InvalidPacket(f"packet type {pkt.packet_type} may not be sent by a client")
        return packets

    def check_websocket_frame(self, frame: str | bytes) -> str | bytes:
        """The frame in the form python-engineio reads (v4): a binary message as bare bytes.
        v3 binary frames lead with their type byte (v3 > Packet); text ones are as in v4,
        except that ``b<type><base64>`` may carry binary."""
        if isinstance(frame, (bytes, bytearray)) or frame.startswith("b"):
            data = eio3_payload.decode_packet_v3(frame).data
            return bytes(data)
        pkt = decode_packet(frame)
        if pkt.packet_type not in CLIENT_WEBSOCKET_TYPES:
            raise InvalidPacket(f"packet type {pkt.packet_type} may not be sent here")
        return frame


def jsonp_index(query: dict[str, list[str]]) -> int | None:
    """The JSONP index ``j`` of a request, or None (python-engineio has refused a bad one)."""
    try:
        return int(query["j"][0])
    except (KeyError, IndexError, ValueError):
        return None


def open_session(
    server: Any, environ: dict[str, Any], start_response: Any, transport: str,
    jsonp: int | None,
) -> Any:
    """Open an EIO=3 session for a handshake request; returns what python-engineio's
    ``_handle_connect`` would (a response dict, or the websocket's result).

    The same steps as python-engineio's handshake, with the v3 OPEN packet (v3 > Anatomy of an
    Engine.IO session: sid, upgrades, pingInterval, pingTimeout) and no server ping.
    """
    if server.start_service_task:
        # python-engineio's monitor of sessions (it closes those that time out) starts with
        # the first session, whatever its protocol.
        server.start_service_task = False
        server.service_task_handle = server.start_background_task(server._service_task)
    query = parse_qs(environ.get("QUERY_STRING", ""))
    sid = server.generate_id()
    session = Eio3Session(server, sid)
    # v3 > URLs: "b64=1 ... to signal the server that all binary data should be sent base64
    # encoded". A JSONP client cannot take binary at all.
    session.b64 = "b64" in query or jsonp is not None
    session.websocket_b64 = "b64" in query
    session.last_received = time.monotonic()
    server.sockets[sid] = session
    session.send(packet.Packet(packet.OPEN, {
        "sid": sid,
        "upgrades": server._upgrades(sid, transport),
        "pingInterval": advertised_ping_interval(server),
        "pingTimeout": int(server.ping_timeout * 1000),
    }))
    refused = server._trigger_event("connect", sid, environ, run_async=False)
    if refused is not None and refused is not True:
        del server.sockets[sid]
        server.logger.warning("Application rejected connection")
        return server._unauthorized(refused or None)
    if transport == "websocket":
        result = session.handle_get_request(environ, start_response)
        if session.closed and sid in server.sockets:
            del server.sockets[sid]
        return result
    session.connected = True
    headers = []
    if server.cookie:
        attributes = server.cookie if isinstance(server.cookie, dict) else {
            "name": server.cookie, "path": "/", "SameSite": "Lax"}
        headers.append(("Set-Cookie", server._generate_sid_cookie(sid, attributes)))
    return session.polling_response(session.poll(), jsonp, headers)


class Eio3DoorMixin:
    """``engineio.Server`` mixin: lets ``EIO=3`` handshakes in when ``allow_eio3`` is set, and
    refuses them with a 400 that says how to allow them otherwise."""

    allow_eio3 = False

    def handle_request(self, environ: dict[str, Any], start_response: Any) -> Any:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if wants_eio3(query):
            server: Any = self
            if not self.allow_eio3:
                # python-engineio's refusal only says "unsupported version"; say what to do.
                server._log_error_once(REFUSAL, "sioctl-eio3-refused")
                response = server._bad_request(REFUSAL)
                start_response(response["status"],
                               response["headers"] + server._cors_headers(environ))
                return [response["response"]]
            # python-engineio refuses any handshake but EIO=4 first thing: its other checks
            # (origin, transport, JSONP index) see an EIO=4 query, and _handle_connect puts
            # the real one back before anything else reads it.
            environ[ORIGINAL_QUERY] = environ.get("QUERY_STRING", "")
            query["EIO"] = ["4"]
            environ["QUERY_STRING"] = urlencode(query, doseq=True)
        elif "sid" in query:
            expire_if_silent(self, query["sid"][0])
        return super().handle_request(environ, start_response)  # type: ignore[misc]

    def _handle_connect(self, environ: dict[str, Any], start_response: Any, transport: str,
                        jsonp_index: int | None = None) -> Any:
        if ORIGINAL_QUERY in environ:
            environ["QUERY_STRING"] = environ.pop(ORIGINAL_QUERY)
            return open_session(self, environ, start_response, transport, jsonp_index)
        return super()._handle_connect(  # type: ignore[misc]
            environ, start_response, transport, jsonp_index)


def expire_if_silent(server: Any, sid: str) -> None:
    """Forget the EIO=3 session ``sid`` if its client has been silent too long, so that the
    request python-engineio is about to serve gets a 400 (v3 > Timeouts; the v3 test suite:
    "closes the session upon ping timeout"). python-engineio's monitor closes such sessions
    too, but only on its rounds."""
    session = server.sockets.get(sid)
    if isinstance(session, Eio3Session) and not session.closed:
        session.check_ping_timeout()
    if isinstance(session, Eio3Session) and session.closed:
        server.sockets.pop(sid, None)


def install(eio: engineio.Server, allow_eio3: bool) -> None:
    """Put the door on ``eio`` (a live server; its class is swapped, its state kept)."""
    if not isinstance(eio, Eio3DoorMixin):
        base = type(eio)
        eio.__class__ = type(f"Eio3{base.__name__}", (Eio3DoorMixin, base), {})
    eio.allow_eio3 = allow_eio3
