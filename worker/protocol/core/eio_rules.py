"""Engine.IO v4 rules as decisions over plain values (core; the shells are
``worker/protocol/engineio_rules.py`` for a session and ``engineio_server.py`` for the server).

Each rule names the section of the Engine.IO v4 specification (socketio/engine.io-protocol,
README) it implements. Inputs are what a request or a frame carries (packet text or bytes, the
method, the parsed query, header values, flags read off the session); outputs are decoded
packets, a problem message to answer with, or an action name the shell carries out.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qs

from engineio import exceptions, packet

# Packet types a client may send. OPEN and NOOP only ever go from server to client, and since v4
# so does PING (Protocol > Heartbeat), except for the "probe" of an upgrade (Protocol > Upgrade).
CLIENT_POLLING_TYPES = frozenset({packet.CLOSE, packet.PONG, packet.MESSAGE})
CLIENT_WEBSOCKET_TYPES = frozenset({packet.CLOSE, packet.PONG, packet.MESSAGE, packet.UPGRADE})
RECORD_SEPARATOR = "\x1e"
SUPPORTED_METHODS = frozenset({"GET", "POST", "OPTIONS"})
# Transports > HTTP long-polling > Sending data: "To indicate success, the server MUST return an
# HTTP 200 response, with the string `ok` in the response body."
POST_OK_BODY = b"ok"
# python-engineio answers 400 to every error of a POST; an oversized body is 413 (Content Too
# Large), as the Node server answers it.
TOO_LARGE_STATUS = "413 Payload Too Large"

# The refusal of a cross-origin request. python-engineio's says only "Not an accepted origin";
# egg-socket.io (socket.io 2) accepted every origin by default, so a team moving over needs to
# be told where the setting is. The same-origin default itself stays.
ORIGIN_REFUSAL = (
    "{origin} is not an accepted origin: only the server's own origin is, by default. Allow "
    "others with io.init.cors in the app directory's config (a list of origins, or '*'), or "
    "socketio.Server(cors_allowed_origins=...) in a module:attr app"
)

# What the server does with a request for an existing session, before python-engineio serves it
# (route_request).
PASS = "pass"
CLOSE_SECOND_WEBSOCKET = "close-second-websocket"
WAIT_FOR_UPGRADE = "wait-for-upgrade"

# What the session sweep does with one session (sweep_action).
FORGET = "forget"
CHECK_PING = "check-ping"
SKIP = "skip"


class InvalidPacket(exceptions.EngineIOError):
    """What a client sent is not an Engine.IO packet it may send; the session is closed.
    (An ``EngineIOError``: python-engineio answers it with a 400.)"""


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


def decode_post_body(raw: bytes) -> list[packet.Packet]:
    """The packets of a v4 POST body; raises :class:`InvalidPacket`."""
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPacket("payload is not UTF-8") from None
    return decode_payload(body)


def check_websocket_frame(frame: str | bytes, upgrading: bool) -> str | bytes:
    """The frame python-engineio should see for one a client sent on the websocket (the same);
    raises :class:`InvalidPacket` for one it may not send (Engine.IO v4: binary frames are bare
    messages, text frames typed packets; a PING only as the probe of an upgrade under way)."""
    if isinstance(frame, bytes) or frame[:1] == "4":
        # A binary frame, or a text MESSAGE: allowed, and python-engineio decodes either
        # without fail (the text after "4" is the message as it is). Nearly every frame is
        # one; it needs no packet built here, python-engineio builds its own.
        return frame
    pkt = decode_packet(frame)
    allowed = pkt.packet_type in CLIENT_WEBSOCKET_TYPES or (
        upgrading and pkt.packet_type == packet.PING and pkt.data == "probe"
    )
    if not allowed:
        raise InvalidPacket(f"packet type {pkt.packet_type} may not be sent here")
    return frame


def body_read_size(chunked: bool, content_length: str | None, limit: int) -> int:
    """How many bytes of a POST body to read, at most: ``limit + 1`` for a chunked body (one
    more than allowed tells an oversized one), else its Content-Length. Raises
    :class:`InvalidPacket` for a Content-Length that is no number, and python-engineio's
    ``ContentTooLongError`` for one over ``limit`` (refused before a byte is read)."""
    if chunked:
        return limit + 1
    try:
        length = int(content_length or 0)
    except ValueError:
        raise InvalidPacket("invalid Content-Length") from None
    if length > limit:
        raise exceptions.ContentTooLongError()
    return length


def check_body_size(size: int, limit: int) -> None:
    """Raises ``ContentTooLongError`` for a body read whole that is over ``limit`` bytes."""
    if size > limit:
        raise exceptions.ContentTooLongError()


def is_websocket_upgrade(environ: dict[str, Any]) -> bool:
    """Whether a request (its WSGI environ, or python-engineio's translation of an ASGI scope)
    asks to upgrade to a websocket."""
    connection = [s.strip() for s in environ.get("HTTP_CONNECTION", "").lower().split(",")]
    return "upgrade" in connection and environ.get("HTTP_UPGRADE", "").lower() == "websocket"


def request_problem(method: str, query: dict[str, list[str]]) -> str | None:
    """Why an Engine.IO request (its method, its parsed query) must be refused with a 400
    before python-engineio sees it, or None."""
    if method not in SUPPORTED_METHODS:
        # Protocol > Handshake: "the client MUST send an HTTP GET request"; data goes by POST.
        # python-engineio answers 405; the official test suite expects 400 ("fails with an
        # invalid request method").
        return f"Unsupported method {method}"
    if method == "OPTIONS":
        return None  # a CORS preflight carries no Engine.IO query
    if "transport" not in query:
        # Transports > HTTP long-polling > Query parameters: "If a mandatory query parameter
        # is missing, then the server MUST respond with an HTTP 400 error status."
        # python-engineio assumes polling. (Transports > WebSocket: likewise, the server MUST
        # close the WebSocket connection; refusing the upgrade is the earliest close.)
        return "Missing transport"
    if method == "POST" and "sid" not in query:
        return "Missing sid"
    return None


def query_sid(query_string: str) -> str | None:
    """The session id a request's query string names, or None."""
    if "sid=" not in query_string:
        return None
    return parse_qs(query_string).get("sid", [None])[0]


def route_request(websocket: bool, upgraded: bool, upgrading: bool) -> str:
    """What to do first with a request for an open session: :data:`CLOSE_SECOND_WEBSOCKET`,
    :data:`WAIT_FOR_UPGRADE` or :data:`PASS` (straight on to python-engineio).

    Transports > WebSocket: "A client MUST NOT open more than one WebSocket connection per
    session. Should it happen, the server MUST close the WebSocket connection": accepted, then
    closed, as the reference server does. Protocol > Upgrade: once the client has sent the
    upgrade packet, polling requests get a 400 (python-engineio's); one sent right after the
    packet may arrive before it is read, so a poll waits for an upgrade under way to settle
    (the shell waits only while :class:`.eio_session.SessionRules` says one is)."""
    if websocket:
        return CLOSE_SECOND_WEBSOCKET if upgraded or upgrading else PASS
    return WAIT_FOR_UPGRADE


def response_status(status: str, too_large: bool) -> str:
    """The status line python-engineio chose, or 413 for a POST refused as oversized."""
    return TOO_LARGE_STATUS if too_large else status


def sweep_pause(ping_timeout: float, sessions: int) -> float | None:
    """How long the session sweep waits between two sessions so that a round over ``sessions``
    takes ``ping_timeout``; None when there are none (wait a whole ``ping_timeout``)."""
    if sessions <= 0:
        return None
    return float(ping_timeout) / sessions


def sweep_action(closed: bool, closing: bool) -> str:
    """What python-engineio's sweep does with a session it looks at: :data:`FORGET` a closed
    one, :data:`CHECK_PING` (close it past its ping timeout) an open one, :data:`SKIP` one
    that is closing."""
    if closed:
        return FORGET
    return SKIP if closing else CHECK_PING


def origin_refusal(origin: str | None, allowed: list[str] | None) -> str | None:
    """The 400's message for a request whose ``Origin`` header is not among ``allowed`` (what
    python-engineio's ``_cors_allowed_origins`` gives: None for every origin), or None to let
    it in. A request without an ``Origin`` (not from a browser page) is never refused; nor is
    any request of a server that does no CORS (``cors_allowed_origins=[]``: the shell does not
    ask)."""
    if not origin or allowed is None or origin in allowed:
        return None
    return ORIGIN_REFUSAL.format(origin=origin)
