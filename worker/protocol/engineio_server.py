"""Engine.IO v4 rules for the server as a whole on python-engineio's sync Server (shell; the
decisions are :mod:`.core.eio_rules`'s: ``request_problem``, ``route_request``,
``response_status``, ``sweep_pause``/``sweep_action``).

:class:`ConformantEngineMixin` answers the requests python-engineio would answer wrongly before
it sees them (the request-level 400s, 413 for an oversized body, a second websocket accepted
and closed) and makes every session python-engineio stores a :class:`.engineio_rules.
ConformantSocket`, whatever dict it stores it in. :func:`sioctl.worker.protocol.install_engine`
puts it in a live server's class; :func:`adopt` then converts the sessions already open.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qs

import engineio
from engineio.async_socket import AsyncSocket
from engineio.socket import Socket

from .core import eio_rules, ws_frame
from .core.eio_rules import is_websocket_upgrade
from .engineio_rules import TOO_LARGE, ConformantSocket

# The session classes python-engineio creates (sync, asyncio): the ones stored sessions are
# converted from.
_LIBRARY_SESSIONS = (Socket, AsyncSocket)


class _ConformantSessions(dict):
    """``eio.sockets`` that hands every session stored in it to the server's
    ``_sioctl_adopt_session`` (which makes it a :class:`ConformantSocket`, or an EIO=3 one).

    python-engineio creates sessions as ``engineio.socket.Socket(server, sid)`` (``AsyncSocket``
    on asyncio) inside its ``_handle_connect`` (no hook chooses the class) and stores them here
    before sending or serving anything, so this is the one place to change their class without
    copying that method: the one class change of a session.
    """

    def __setitem__(self, sid: str, session: Any) -> None:
        if type(session) in _LIBRARY_SESSIONS:
            session.server._sioctl_adopt_session(session)
        super().__setitem__(sid, session)


# The socket id python-socketio is about to ask the engine for (its manager's ``pre_connect``
# calls ``eio.generate_id()`` with no arguments), set around one ``_handle_connect``. A context
# variable: each green thread and asyncio task has its own.
_NEXT_SOCKET_ID: ContextVar[str | None] = ContextVar("sioctl_next_socket_id", default=None)


@contextmanager
def next_socket_id(sid: str) -> Iterator[None]:
    """Within this block, the engine's next ``generate_id()`` returns ``sid`` (once)."""
    token = _NEXT_SOCKET_ID.set(sid)
    try:
        yield
    finally:
        _NEXT_SOCKET_ID.reset(token)


class NextSocketIdMixin:
    """``generate_id`` that hands out the id set by :func:`next_socket_id` first (a v2
    client's socket id); for the sync and async engines. An app's ``io.generate_id`` still
    wins: the framework replaces ``generate_id`` on the instance."""

    def generate_id(self) -> str:
        """The id set by :func:`next_socket_id`, else python-engineio's random one."""
        sid = _NEXT_SOCKET_ID.get()
        if sid is None:
            return str(super().generate_id())  # type: ignore[misc]
        _NEXT_SOCKET_ID.set(None)  # one id, for one socket
        return sid


class SessionsDictMixin:
    """``sockets`` as a :class:`_ConformantSessions`, for the sync and async servers."""

    @property
    def sockets(self) -> dict[str, Any]:
        """python-engineio's sessions by sid (a :class:`_ConformantSessions`)."""
        sessions: dict[str, Any] = self.__dict__["sockets"]
        return sessions

    @sockets.setter
    def sockets(self, sessions: dict[str, Any]) -> None:
        # python-engineio replaces the dict at times (``disconnect()`` without a sid does
        # ``self.sockets = {}``): whatever it stores, sessions stored from then on still get
        # the rules.
        if not isinstance(sessions, _ConformantSessions):
            conformant = _ConformantSessions()
            for sid, session in sessions.items():
                conformant[sid] = session
            sessions = conformant
        self.__dict__["sockets"] = sessions


# python-engineio's log key for a request naming a session the server does not hold.
UNKNOWN_SESSION_KEY = "bad-sid"
# The one line a worker logs, at INFO, for the first such request.
UNKNOWN_SESSION_NOTE = (
    "%s: answered 400, the client starts a new session. This worker does not hold that "
    "session: it ended, or it lived on a worker that was replaced, removed or restarted "
    "(HUP, scale, a crash); a steady stream of these means the proxy in front does not keep "
    "each client on one node. Further ones are logged at INFO on the %r logger.")


class UnknownSessionLogMixin:
    """A request for an unknown session (python-engineio's ``Invalid session``) is no ERROR.

    In a sticky cluster it is what a planned restart leaves behind: a polling client of a
    session that lived on the old worker (or on a slot a scale-down removed) reaches a worker
    that never had it, gets 400 and reconnects. python-engineio logs the first at ERROR, so
    every HUP under polling clients logged one per worker. The first is now one INFO line on
    the worker's log saying what it means, the rest go to python-engineio's logger at INFO as
    before; other errors keep python-engineio's treatment. Sync and async servers alike."""

    _sioctl_unknown_noted = False
    logger: logging.Logger  # python-engineio's (the app's ``logger=``, else engineio.server)

    def _log_error_once(self, message: str, message_key: str) -> None:
        if message_key != UNKNOWN_SESSION_KEY:
            super()._log_error_once(message, message_key)  # type: ignore[misc]
            return
        if not self._sioctl_unknown_noted:
            self._sioctl_unknown_noted = True
            logging.getLogger("sioctl.worker").info(UNKNOWN_SESSION_NOTE, message,
                                                    self.logger.name)
        else:
            self.logger.info(message)


class ConformantEngineMixin(UnknownSessionLogMixin, SessionsDictMixin, NextSocketIdMixin):
    """``engineio.Server`` mixin: request-level rules of the specification."""

    def handle_request(self, environ: dict[str, Any], start_response: Any) -> Any:
        server: Any = self
        problem = request_problem(environ)
        # One log key for every refused origin (python-engineio's way): a key per origin would
        # let any client grow the server's set of logged keys.
        key = f"sioctl-bad-request-{problem}" if problem else "sioctl-bad-origin"
        problem = problem or origin_refusal(server, environ)
        if problem:
            server._log_error_once(problem, key)
            response = server._bad_request(problem)
            start_response(response["status"], response["headers"] + server._cors_headers(environ))
            return [response["response"]]
        sid = eio_rules.query_sid(environ.get("QUERY_STRING", ""))
        session = self.sockets.get(sid) if sid else None
        if isinstance(session, ConformantSocket):
            action = eio_rules.route_request(
                is_websocket_upgrade(environ), session.upgraded, session.upgrading)
            if action == eio_rules.CLOSE_SECOND_WEBSOCKET:
                return self._close_second_websocket(environ, start_response, session)
            if action == eio_rules.WAIT_FOR_UPGRADE:
                session.wait_for_upgrade()

        def respond(status: str, headers: Any, exc_info: Any = None) -> Any:
            status = eio_rules.response_status(status, bool(environ.get(TOO_LARGE)))
            return start_response(status, headers, exc_info)

        return super().handle_request(environ, respond)  # type: ignore[misc]

    def _sioctl_adopt_session(self, session: Socket) -> None:
        """Make ``session``, just created by python-engineio, one that follows the rules."""
        session.__class__ = ConformantSocket

    def _close_second_websocket(
        self, environ: dict[str, Any], start_response: Any, session: ConformantSocket
    ) -> Any:
        """Transports > WebSocket: "A client MUST NOT open more than one WebSocket connection
        per session. Should it happen, the server MUST close the WebSocket connection." As the
        reference server does, the websocket is accepted, then closed at once; the session
        goes on over its first one. (python-engineio answers 400 at the handshake, or raises,
        which reached the HTTP server as a 500.)"""
        server: Any = self
        server._log_error_once(
            f"closing a second websocket for session {session.sid}", "sioctl-second-websocket"
        )
        accept = server._async["websocket"](_close_websocket, server)
        return accept(environ, start_response)

    def _service_task(self) -> None:
        """python-engineio's sweep (close sessions past their ping timeout, forget closed
        ones, all of them once per ``ping_timeout``), going over the session ids.

        python-engineio's own sweep goes over a copy of the sessions dict, which keeps every
        session of the sweep alive until the sweep ends, up to ``ping_timeout`` seconds after
        its client has gone; after a mass disconnect that was every session at once (docs/
        design.md, "Memory after mass disconnects"). Here each session is looked up at its
        turn and nothing holds it in between.
        """
        server: Any = self
        stop = server.service_task_event = server.create_event()
        while not stop.is_set():
            sids = list(self.sockets)
            interval = eio_rules.sweep_pause(server.ping_timeout, len(sids))
            if interval is None:
                if stop.wait(timeout=server.ping_timeout):
                    break
                continue
            try:
                for sid in sids:
                    self._sweep_session(sid)
                    if stop.wait(timeout=interval):
                        return
            except Exception:  # as python-engineio: log it, sweep on
                server.logger.exception("service task exception")

    def _sweep_session(self, sid: str) -> None:
        session = self.sockets.get(sid)
        if session is None:
            return
        action = eio_rules.sweep_action(session.closed, session.closing)
        if action == eio_rules.FORGET:
            self.sockets.pop(sid, None)
        elif action == eio_rules.CHECK_PING:
            session.check_ping_timeout()

    def _ok(self, packets: Any = None, headers: Any = None, jsonp_index: Any = None) -> Any:
        if packets:
            packets = ws_frame.polling_packets(packets)
        response = super()._ok(packets, headers, jsonp_index)  # type: ignore[misc]
        if packets is None:  # the answer to a POST
            response["response"] = eio_rules.POST_OK_BODY
        return response


def request_problem(environ: dict[str, Any]) -> str | None:
    """Why this Engine.IO request must be refused with a 400 before python-engineio sees it
    (:func:`.core.eio_rules.request_problem` on its method and query)."""
    method = environ.get("REQUEST_METHOD", "")
    return eio_rules.request_problem(method, parse_qs(environ.get("QUERY_STRING", "")))


def origin_refusal(server: Any, environ: dict[str, Any]) -> str | None:
    """Why this request's Origin is refused, saying how to allow it (:func:`.core.eio_rules.
    origin_refusal` on python-engineio's own list of allowed origins), or None. Checked before
    python-engineio's check, which would refuse the same request without saying how; shared by
    the sync and async shells."""
    if server.cors_allowed_origins == [] or not environ.get("HTTP_ORIGIN"):
        return None
    return eio_rules.origin_refusal(environ["HTTP_ORIGIN"], server._cors_allowed_origins(environ))


def _close_websocket(ws: Any) -> None:
    ws.close()


def adopt(eio: engineio.Server) -> None:
    """Give ``eio`` (whose class has :class:`ConformantEngineMixin`) its sessions dict: the
    sessions already open become :class:`ConformantSocket` too."""
    server: Any = eio
    server.sockets = vars(eio).get("sockets", {})
