"""The door to Engine.IO protocol 3: ``EIO=3`` handshakes open v3 sessions
(:class:`.eio3.Eio3Session`) when ``allow_eio3`` is set, and get a 400 saying how to allow them
otherwise.

python-engineio 4 refuses any handshake but ``EIO=4`` as the first thing it does. The mixin here
lets an ``EIO=3`` handshake through python-engineio's other checks under an ``EIO=4`` query,
then opens the session itself (:func:`open_session`) with the v3 OPEN packet.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlencode

import engineio
from engineio import packet

from .eio3 import PROTOCOL, Eio3Session
from .ping_interval import advertised_ping_interval

REFUSAL = (
    "Engine.IO protocol 3 (EIO=3, Socket.IO v2 clients) is not enabled on this server; "
    "start it with --allow-eio3 (SIOCTL_ALLOW_EIO3=1) to serve them"
)
# Where a handshake's own query waits while python-engineio's checks see it as EIO=4.
ORIGINAL_QUERY = "sioctl.eio3_query"


def wants_eio3(query: dict[str, list[str]]) -> bool:
    """Whether a request (its parsed query) opens an Engine.IO protocol 3 session."""
    return "sid" not in query and query.get("EIO") == [PROTOCOL]


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


def adopt(eio: engineio.Server, allow_eio3: bool) -> None:
    """Open or close the door on ``eio`` (whose class has :class:`Eio3DoorMixin`)."""
    server: Any = eio
    server.allow_eio3 = allow_eio3
