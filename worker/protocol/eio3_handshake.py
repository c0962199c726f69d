"""The door to Engine.IO protocol 3: ``EIO=3`` handshakes open v3 sessions
(:class:`.eio3.Eio3Session`) when ``allow_eio3`` is set, and get a 400 saying how to allow them
otherwise.

python-engineio 4 refuses any handshake but ``EIO=4`` as the first thing it does. The mixin here
lets an ``EIO=3`` handshake through python-engineio's other checks under an ``EIO=4`` query,
then lets python-engineio's own ``_handle_connect`` open the session: the session it creates is
made an :class:`.eio3.Eio3Session` (which frames and heartbeats the v3 way) and the handshake's
response is framed the v3 way. (Shell: the door's decisions, :func:`wants_eio3`, the EIO=4
query, the base64 flags, are :mod:`.core.eio3_rules`'s.)
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import engineio

from .core import eio3_rules
from .core.eio3_rules import REFUSAL, wants_eio3
from .eio3 import Eio3Session

# Where a handshake's own query waits while python-engineio's checks see it as EIO=4.
ORIGINAL_QUERY = "sioctl.eio3_query"


@dataclass
class _Opening:
    """The EIO=3 handshake python-engineio's ``_handle_connect`` is serving."""

    query: dict[str, list[str]]
    jsonp: bool
    session: Eio3Session | None = None


# Set while an EIO=3 handshake runs through python-engineio's _handle_connect (in the request's
# own green thread or thread, hence a context variable); None for every other request.
OPENING: ContextVar[_Opening | None] = ContextVar("sioctl_eio3_opening", default=None)


class Eio3DoorBase:
    """What the sync and async doors share: the session python-engineio stores during an EIO=3
    handshake becomes a v3 one, and the polling handshake's answer is framed the v3 way. (On
    python-engineio's ``base_server`` methods, the same for both engines.)"""

    allow_eio3 = False
    # The v3 session class of this engine.
    _sioctl_eio3_session: type = Eio3Session

    def _sioctl_adopt_session(self, session: Any) -> None:
        opening = OPENING.get()
        if opening is None:
            super()._sioctl_adopt_session(session)  # type: ignore[misc]
            return
        session.__class__ = self._sioctl_eio3_session
        session.b64, session.websocket_b64 = eio3_rules.binary_as_base64(
            opening.query, opening.jsonp)
        session.last_received = time.monotonic()
        opening.session = session

    def _ok(self, packets: Any = None, headers: Any = None, jsonp_index: Any = None) -> Any:
        opening = OPENING.get()
        if opening is not None and opening.session is not None and packets is not None:
            # The polling handshake's response: the OPEN packet, framed the v3 way.
            return opening.session.polling_response(packets, jsonp_index, headers)
        return super()._ok(packets, headers, jsonp_index)  # type: ignore[misc]


def opening_for(environ: dict[str, Any], jsonp_index: int | None) -> _Opening | None:
    """For an EIO=3 handshake (its query set aside by the door), put its query back and return
    what ``_handle_connect`` is opening; None for any other handshake."""
    if ORIGINAL_QUERY not in environ:
        return None
    environ["QUERY_STRING"] = environ.pop(ORIGINAL_QUERY)
    return _Opening(parse_qs(environ["QUERY_STRING"]), jsonp_index is not None)


class Eio3DoorMixin(Eio3DoorBase):
    """``engineio.Server`` mixin: lets ``EIO=3`` handshakes in when ``allow_eio3`` is set, and
    refuses them with a 400 that says how to allow them otherwise."""

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
            environ["QUERY_STRING"] = eio3_rules.as_eio4_query(query)
        elif "sid" in query:
            expire_if_silent(self, query["sid"][0])
        return super().handle_request(environ, start_response)  # type: ignore[misc]

    def _handle_connect(self, environ: dict[str, Any], start_response: Any, transport: str,
                        jsonp_index: int | None = None) -> Any:
        opening = opening_for(environ, jsonp_index)
        if opening is None:
            return super()._handle_connect(  # type: ignore[misc]
                environ, start_response, transport, jsonp_index)
        token = OPENING.set(opening)
        try:
            # python-engineio's handshake, unchanged: the session it stores becomes a v3 one
            # (_sioctl_adopt_session), which sends the v3 OPEN packet and no pings; a polling
            # handshake's response is framed the v3 way (_ok). (A websocket handshake is served
            # to its end inside this call; nothing there stores a session or calls _ok.)
            return super()._handle_connect(  # type: ignore[misc]
                environ, start_response, transport, jsonp_index)
        finally:
            OPENING.reset(token)


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
    """Open or close the door on ``eio`` (whose class has :class:`Eio3DoorMixin`, or the
    async door)."""
    server: Any = eio
    server.allow_eio3 = allow_eio3
