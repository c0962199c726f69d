"""Engine.IO v4 rules for the server as a whole, added around python-engineio's Server.

:class:`ConformantEngineMixin` answers the requests python-engineio would answer wrongly before
it sees them (the request-level 400s, 413 for an oversized body, a second websocket accepted
and closed) and makes every session python-engineio stores a :class:`.engineio_rules.
ConformantSocket`, whatever dict it stores it in. :func:`sioctl.worker.protocol.install_engine`
puts it in a live server's class; :func:`adopt` then converts the sessions already open.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import engineio
from engineio.socket import Socket

from .engineio_rules import TOO_LARGE, ConformantSocket, is_websocket_upgrade

SUPPORTED_METHODS = frozenset({"GET", "POST", "OPTIONS"})


class _ConformantSessions(dict):
    """``eio.sockets`` that hands every session stored in it to the server's
    ``_sioctl_adopt_session`` (which makes it a :class:`ConformantSocket`, or an EIO=3 one).

    python-engineio creates sessions as ``engineio.socket.Socket(server, sid)`` inside its
    ``_handle_connect`` (no hook chooses the class) and stores them here before sending or
    serving anything, so this is the one place to change their class without copying that
    method: the one class change of a session.
    """

    def __setitem__(self, sid: str, session: Any) -> None:
        if type(session) is Socket:
            session.server._sioctl_adopt_session(session)
        super().__setitem__(sid, session)


class ConformantEngineMixin:
    """``engineio.Server`` mixin: request-level rules of the specification."""

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

    def handle_request(self, environ: dict[str, Any], start_response: Any) -> Any:
        server: Any = self
        problem = request_problem(environ)
        if problem:
            server._log_error_once(problem, f"sioctl-bad-request-{problem}")
            response = server._bad_request(problem)
            start_response(response["status"], response["headers"] + server._cors_headers(environ))
            return [response["response"]]
        query = environ.get("QUERY_STRING", "")
        sid = parse_qs(query).get("sid", [None])[0] if "sid=" in query else None
        session = self.sockets.get(sid) if sid else None
        if isinstance(session, ConformantSocket):
            if is_websocket_upgrade(environ):
                if session.upgraded or session.upgrading:
                    return self._close_second_websocket(environ, start_response, session)
            else:
                # Protocol > Upgrade: once the client has sent the upgrade packet, the session
                # lives on the websocket and polling requests get a 400 (python-engineio's,
                # below); one sent right after the packet may arrive before it is read.
                session.wait_for_upgrade()

        def respond(status: str, headers: Any, exc_info: Any = None) -> Any:
            if environ.get(TOO_LARGE):
                # python-engineio answers 400 to every error of a POST; an oversized body is
                # 413 (Content Too Large), as the Node server answers it.
                status = "413 Payload Too Large"
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
            if not sids:
                if stop.wait(timeout=server.ping_timeout):
                    break
                continue
            interval = float(server.ping_timeout) / len(sids)
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
        if session.closed:
            self.sockets.pop(sid, None)
        elif not session.closing:
            session.check_ping_timeout()

    def _ok(self, packets: Any = None, headers: Any = None, jsonp_index: Any = None) -> Any:
        response = super()._ok(packets, headers, jsonp_index)  # type: ignore[misc]
        if packets is None:
            # Transports > HTTP long-polling > Sending data: "To indicate success, the server
            # MUST return an HTTP 200 response, with the string `ok` in the response body."
            response["response"] = b"ok"
        return response


def request_problem(environ: dict[str, Any]) -> str | None:
    """Why this Engine.IO request must be refused with a 400 before python-engineio sees it."""
    method = environ.get("REQUEST_METHOD", "")
    if method not in SUPPORTED_METHODS:
        # Protocol > Handshake: "the client MUST send an HTTP GET request"; data goes by POST.
        # python-engineio answers 405; the official test suite expects 400 ("fails with an
        # invalid request method").
        return f"Unsupported method {method}"
    if method == "OPTIONS":
        return None  # a CORS preflight carries no Engine.IO query
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "transport" not in query:
        # Transports > HTTP long-polling > Query parameters: "If a mandatory query parameter
        # is missing, then the server MUST respond with an HTTP 400 error status."
        # python-engineio assumes polling. (Transports > WebSocket: likewise, the server MUST
        # close the WebSocket connection; refusing the upgrade is the earliest close.)
        return "Missing transport"
    if method == "POST" and "sid" not in query:
        return "Missing sid"
    return None


def _close_websocket(ws: Any) -> None:
    ws.close()


def adopt(eio: engineio.Server) -> None:
    """Give ``eio`` (whose class has :class:`ConformantEngineMixin`) its sessions dict: the
    sessions already open become :class:`ConformantSocket` too."""
    server: Any = eio
    server.sockets = vars(eio).get("sockets", {})
