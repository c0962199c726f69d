"""Engine.IO v4 rules on python-engineio's asyncio classes (async shell; the rules are
:mod:`.core.eio_rules` and :mod:`.core.eio_session`, the same as the sync shells
:mod:`.engineio_rules` and :mod:`.engineio_server` use).

:class:`AsyncConformantSocket` is :class:`.engineio_rules.ConformantSocket` for
``engineio.async_socket.AsyncSocket``, :class:`AsyncConformantEngineMixin`
:class:`.engineio_server.ConformantEngineMixin` for ``engineio.AsyncServer``: the same
decisions, awaited where python-engineio's methods are coroutines, with asyncio's means (a loop
timer for the next ping, an ``asyncio.Event`` the polls wait on). The asyncio worker
(worker/aio) installs them on the app's servers;
tests/unit/worker/protocol/test_protocol_async.py also drives them in process through
python-engineio's ASGI app.

Engine.IO 3 (Socket.IO v2 clients) on asyncio: :mod:`.async_eio3`.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from contextvars import ContextVar
from typing import Any

from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket

from .async_asgi import AsgiWebSocket, answered, asgi_frame, close_websocket, refusing_websockets
from .async_ping import PingTimers
from .async_websocket import serve_websocket
from .core import eio_rules, ws_frame
from .core.eio_rules import DuplicateRequest, InvalidPacket, is_websocket_upgrade
from .core.eio_session import UPGRADE_POLL_WAIT
from .engineio_rules import TOO_LARGE, SessionRulesMixin
from .engineio_server import (
    NextSocketIdMixin,
    SessionsDictMixin,
    UnknownSessionLogMixin,
    origin_refusal,
    request_problem,
)
from .session_queue import SessionQueue
from .shared_writes import AsyncDirectWrites, AsyncSharedWrites

# asyncio.timeout (Python 3.11+); on 3.10 poll() is python-engineio's.
_timeout: Any = getattr(asyncio, "timeout", None)
# The environ of the request being served, once the shell has translated it: python-engineio's
# handle_request translates the request itself, and an ASGI request cannot be read twice (its
# first receive() event is consumed), so the shell's translate_request hands this one back.
_TRANSLATED: ContextVar[dict[str, Any] | None] = ContextVar("sioctl_translated", default=None)


class AsyncConformantSocket(AsyncSharedWrites, SessionRulesMixin, AsyncSocket):
    """An asyncio Engine.IO session that enforces the transport rules of the specification."""

    last_ping: float | None
    _ping_handle: Any = None  # the loop timer of the next ping
    async def wait_for_upgrade(self) -> None:
        """If an upgrade is under way, wait (at most UPGRADE_POLL_WAIT) for it to end."""
        event = self._upgrade_settled
        if event is not None:
            try:
                await asyncio.wait_for(event.wait(), UPGRADE_POLL_WAIT)
            except asyncio.TimeoutError:
                pass

    async def receive(self, pkt: packet.Packet) -> None:
        self.rules.received(pkt.packet_type)
        await super().receive(pkt)

    async def poll(self) -> list[packet.Packet]:
        """The packets to send (at least one, waiting up to ping_interval + ping_timeout; ``[]``
        once the queue says the session ends; ``QueueEmpty`` when the wait runs out or is
        cancelled), as python-engineio's ``poll``, but waiting under ``asyncio.timeout``
        instead of ``asyncio.wait_for``: an idle websocket's writer (and a pending long-poll)
        then holds one timer, not a task, a future and a timer besides (Python 3.11+)."""
        if _timeout is None:
            return await super().poll()
        try:
            async with _timeout(self.server.ping_interval + self.server.ping_timeout):
                first = await self.queue.get()
        except (asyncio.TimeoutError, asyncio.CancelledError):
            raise exceptions.QueueEmpty() from None
        self.queue.task_done()
        if first is None:
            return []
        packets = [first]
        while True:  # what else is queued goes out with it, up to an end marker
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)  # the next poll ends the session's writer
                break
            packets.append(pkt)
        return packets

    def schedule_ping(self) -> None:
        """Send the next ping from a loop timer, not a task sleeping ``ping_interval`` per
        session as python-engineio does (a timer handle is far smaller than a task)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = self.rules.schedule_ping(bool(self.last_ping), now, self.server.ping_interval)
        if due is not None:
            self.last_ping = None
            # One loop timer for the server's pings (async_ping.PingTimers), not one each.
            self._ping_handle = PingTimers.of(self.server).call_at(due, self)

    def _ping_now(self) -> None:
        """The timer's end: python-engineio's ``_send_ping`` without its sleep. A loop callback
        must not block: the packet goes on the (unbounded) queue without waiting."""
        self._ping_handle = None
        try:
            if self.rules.ping_fires(self.closing or self.closed):
                self.last_ping = time.time()
                self.queue.put_nowait(packet.Packet(packet.PING))
        except Exception:  # the loop would only print it; say it in our log instead
            self.server.logger.exception("%s: sending a ping failed", self.sid)

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        """python-engineio's close, then the pending long-poll GET woken and the pending ping
        timer cancelled (it holds the session until it fires).

        python-engineio's ``AsyncSocket.close`` does not wake a GET waiting in ``poll()``; the
        sync ``Socket.close`` puts ``None`` on the queue, which ends the GET with an empty
        answer at once. Without it every long-polling client's disconnect, and a drain that
        closes polling sessions, waited for the ping timeout (20-25 s by default)."""
        try:
            if self.closed or self.closing:
                return
            await super().close(wait=False, abort=abort, reason=reason)
            self.queue.put_nowait(None)  # the GET waiting in poll() answers now
            if wait:
                await self.queue.join()
        finally:
            self.rules.cancel_ping()
            handle, self._ping_handle = self._ping_handle, None
            if handle is not None:
                handle.cancel()

    def handle_get_request(self, environ: dict[str, Any]) -> Any:
        """python-engineio's ``handle_get_request``, as a plain call that returns the awaitable
        serving the request: a websocket's request is suspended under it for the connection's
        life, and a coroutine of its own (and python-engineio's) would stay there with it."""
        if is_websocket_upgrade(environ):
            if "websocket" in self.upgrade_protocols:
                # python-engineio's upgrade branch (is_websocket_upgrade is its test).
                self.server.logger.info("%s: Received request to upgrade to %s",
                                        self.sid, "websocket")
                return self._upgrade_websocket(environ)
            return super().handle_get_request(environ)
        return self._polling_get(environ)

    def _upgrade_websocket(self, environ: dict[str, Any]) -> Any:
        """python-engineio's ``_upgrade_websocket`` as a plain call: the websocket's awaitable
        (what ``_async['websocket'](self._websocket_handler, server)(environ)`` gives)."""
        if self.upgraded:
            raise OSError("Socket has been upgraded already")
        factory = self.server._async["websocket"]
        if factory is None:  # the async mode has no websocket
            return answered(self.server._bad_request())
        return factory(self._websocket_handler, self.server)(environ)

    async def _polling_get(self, environ: dict[str, Any]) -> Any:
        """A long-polling GET: the rules' one-GET-at-a-time check around python-engineio's."""
        try:
            self.rules.begin_get()
        except DuplicateRequest:
            await self._close_for_error("a second concurrent GET")
            raise
        try:
            await self._expire_if_silent()
            packets = await super().handle_get_request(environ)
        except BaseException:
            self.rules.abort_get()
            raise
        return self.rules.end_get(packets)

    async def handle_post_request(self, environ: dict[str, Any]) -> None:
        try:
            self.rules.begin_post()
        except DuplicateRequest:
            await self._close_for_error("a second concurrent POST")
            raise
        try:
            await self._expire_if_silent()
            raw = await self._read_body(environ)
            try:
                packets = self.decode_post_body(raw, environ)
            except InvalidPacket:
                await self._close_for_error("an invalid packet")
                raise
            for pkt in packets:
                await self.receive(pkt)
        finally:
            self.rules.end_post()

    async def _expire_if_silent(self) -> None:
        """Protocol > Heartbeat: a request from a client past its ping timeout gets the 400
        of a closed session (python-engineio's sweep may be up to a ping_timeout late)."""
        if not await self.check_ping_timeout():
            raise exceptions.SocketIsClosedError("ping timeout")

    def decode_post_body(self, raw: bytes, environ: dict[str, Any]) -> list[packet.Packet]:
        """The packets of a POST body (Engine.IO v4 framing); raises :class:`InvalidPacket`."""
        return eio_rules.decode_post_body(raw)

    def check_websocket_frame(self, frame: str | bytes) -> str | bytes:
        """The frame python-engineio should see for one a client sent on the websocket;
        raises :class:`InvalidPacket` for one it may not send."""
        return eio_rules.check_websocket_frame(frame, self.upgrading)

    async def _read_body(self, environ: dict[str, Any]) -> bytes:
        limit = self.server.max_http_buffer_size
        try:
            size = eio_rules.body_read_size(
                environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked",
                environ.get("CONTENT_LENGTH"), limit)
            raw = await environ["wsgi.input"].read(size)
            eio_rules.check_body_size(len(raw), limit)
        except InvalidPacket:
            await self._close_for_error("an invalid Content-Length")
            raise
        except exceptions.ContentTooLongError:
            environ[TOO_LARGE] = True  # answered 413 (AsyncConformantEngineMixin)
            await self._close_for_error("an oversized payload")
            raise
        return bytes(raw)

    async def _close_for_error(self, what: str) -> None:
        """Close the session now, without waiting for its queue to drain (python-engineio's
        ``disconnect()`` would wait for a GET that may never come)."""
        self.server._log_error_once(
            f"closing session {self.sid}: {what}", f"sioctl-protocol-{what}"
        )
        await self.close(wait=False, abort=False, reason=self.server.reason.TRANSPORT_ERROR)

    def _websocket_handler(self, ws: Any) -> Any:
        """Serve the websocket with every incoming frame checked first (a bad frame closes
        the session and the websocket; during an upgrade's probe, only the probe websocket):
        the awaitable of :func:`.async_websocket.serve_websocket`, python-engineio's handler
        without its task per frame read, which calls the three methods below. A plain call:
        the idle websocket waits under what it returns, with no coroutine of this method."""
        return serve_websocket(self, ws)

    def _sioctl_websocket_opens(self, ws: Any) -> Any:
        """The websocket is accepted: the guarded websocket its frames are read through."""
        guarded = _AsyncGuardedWebSocket(ws, self)
        if self.rules.websocket_opens(self.connected, self.upgraded):
            self._upgrade_settled = self.server.create_event()
        if guarded.protocol is not None:
            self._sioctl_direct = guarded
        return guarded

    async def _sioctl_websocket_refused(self, ws: Any, exc: InvalidPacket) -> None:
        """An upgrade's probe websocket sent what it may not: it is closed, the session goes
        on polling."""
        self.upgrading = False
        self.server._log_error_once(
            f"closing the upgrade websocket of {self.sid}: {exc}", "sioctl-invalid-probe"
        )
        await ws.close()

    def _sioctl_websocket_ends(self) -> None:
        """The websocket is served no more (whichever way it ended)."""
        self._sioctl_direct = None
        self.upgrade_settled()


class _AsyncGuardedWebSocket(AsyncDirectWrites):
    """The websocket python-engineio reads, with each frame validated as it arrives."""

    def __init__(self, ws: Any, session: AsyncConformantSocket) -> None:
        self._ws = ws
        self._session = session
        self._after_binary = False
        # The ASGI receive, read here rather than through python-engineio's wait(): one
        # coroutine less under an idle websocket's read (async_websocket.asgi_frame).
        self._receive = ws.asgi_receive if isinstance(ws, AsgiWebSocket) else None
        self._direct_init(ws)

    async def wait(self) -> Any:
        session = self._session
        if self._after_binary:
            # As the sync engine's (guarded_websocket.GuardedWebSocket): a handler task per
            # message, and awaiting a frame already received does not yield; one yield per
            # binary frame lets those tasks count it against max_http_buffer_size first.
            self._after_binary = False
            await session.server.sleep(0)
        if session.closed:
            return None  # a handler closed the session: read nothing more of it
        if not session.upgrading:
            session.upgrade_settled()
        receive = self._receive
        frame = asgi_frame(await receive()) if receive is not None else await self._ws.wait()
        if frame is None:
            return None
        self._after_binary = not isinstance(frame, str)
        return session.checked_websocket_frame(frame)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)


class AsyncConformantEngineMixin(UnknownSessionLogMixin, SessionsDictMixin, NextSocketIdMixin):
    """``engineio.AsyncServer`` mixin: request-level rules of the specification."""

    _sioctl_translate: Any  # the async driver's own translate_request (set by adopt)

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        """Each session's outgoing queue: a :class:`.session_queue.SessionQueue` (a fraction
        of an ``asyncio.Queue``'s memory while the session idles; it advertises the exact
        ping interval in the OPEN packet too). Other queues are python-engineio's."""
        if args or kwargs:
            return super().create_queue(*args, **kwargs)  # type: ignore[misc]
        return SessionQueue(self)

    def _sioctl_adopt_session(self, session: Any) -> None:
        """Make ``session``, just created by python-engineio, one that follows the rules."""
        session.__class__ = AsyncConformantSocket

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        environ = await _call(self._sioctl_translate, *args, **kwargs)
        if environ:  # an empty dict: python-engineio's driver saw no request
            answered, response = await self._sioctl_screen(environ)
            if answered:
                return response
        token = _TRANSLATED.set(environ)
        try:
            return await super().handle_request(*args, **kwargs)  # type: ignore[misc]
        finally:
            _TRANSLATED.reset(token)

    async def _sioctl_screen(self, environ: dict[str, Any]) -> tuple[bool, Any]:
        """The rules that come before python-engineio's routing, on the translated request:
        (True, the response) when they answer it, (False, None) to let python-engineio serve
        it. A door before this mixin (EIO=3's) screens first."""
        server: Any = self
        problem = request_problem(environ)
        key = f"sioctl-bad-request-{problem}" if problem else "sioctl-bad-origin"
        problem = problem or origin_refusal(server, environ)
        if problem:
            server._log_error_once(problem, key)
            return True, await server._make_response(server._bad_request(problem), environ)
        sid = eio_rules.query_sid(environ.get("QUERY_STRING", ""))
        session = self.sockets.get(sid) if sid else None
        if isinstance(session, AsyncConformantSocket):
            action = eio_rules.route_request(
                is_websocket_upgrade(environ), session.upgraded, session.upgrading)
            if action == eio_rules.CLOSE_SECOND_WEBSOCKET:
                server._log_error_once(f"closing a second websocket for session {session.sid}",
                                       "sioctl-second-websocket")
                return True, await server._async["websocket"](close_websocket, server)(environ)
            if action == eio_rules.WAIT_FOR_UPGRADE:
                await session.wait_for_upgrade()
        return False, None

    async def _make_response(self, response_dict: dict[str, Any], environ: dict[str, Any]) -> Any:
        response_dict["status"] = eio_rules.response_status(
            response_dict["status"], bool(environ.get(TOO_LARGE)))
        return await super()._make_response(response_dict, environ)  # type: ignore[misc]

    def _ok(self, packets: Any = None, headers: Any = None, jsonp_index: Any = None) -> Any:
        if packets:
            packets = ws_frame.polling_packets(packets)
        response = super()._ok(packets, headers, jsonp_index)  # type: ignore[misc]
        if packets is None:  # the answer to a POST
            response["response"] = eio_rules.POST_OK_BODY
        return response

    async def _service_task(self) -> None:
        """python-engineio's sweep, going over the session ids (no copy of the sessions dict
        holds them between two looks)."""
        server: Any = self
        stop = server.service_task_event = server.create_event()
        while not stop.is_set():
            sids = list(self.sockets)
            pause = eio_rules.sweep_pause(server.ping_timeout, len(sids))
            try:
                for sid in sids:
                    session = self.sockets.get(sid)
                    if session is not None:
                        action = eio_rules.sweep_action(session.closed, session.closing)
                        if action == eio_rules.FORGET:
                            self.sockets.pop(sid, None)
                        elif action == eio_rules.CHECK_PING:
                            await session.check_ping_timeout()
                    if await _stopped(stop, pause):
                        return
            except Exception:  # as python-engineio: log it, sweep on
                server.logger.exception("service task exception")
            if not sids and await _stopped(stop, server.ping_timeout):
                return


async def _stopped(stop: asyncio.Event, timeout: float | None) -> bool:
    """Whether ``stop`` was set within ``timeout`` seconds."""
    try:
        await asyncio.wait_for(stop.wait(), timeout)
    except asyncio.TimeoutError:
        return False
    return True


async def _call(func: Any, *args: Any, **kwargs: Any) -> Any:
    result = func(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


def adopt(eio: Any) -> None:
    """Give ``eio`` (an ``engineio.AsyncServer`` whose class has
    :class:`AsyncConformantEngineMixin`) its sessions dict, and its own copy of the async
    driver's table whose ``translate_request`` hands back the request the mixin has already
    translated (the driver's table is shared by every server of the process: not changed)."""
    eio.sockets = vars(eio).get("sockets", {})
    if getattr(eio, "_sioctl_translate", None) is None:
        original = eio._async["translate_request"]
        eio._sioctl_translate = original

        async def translate_request(*args: Any, **kwargs: Any) -> Any:
            environ = _TRANSLATED.get()
            return environ if environ is not None else await _call(original, *args, **kwargs)

        eio._async = {**eio._async, "translate_request": translate_request,
                      "make_response": refusing_websockets(eio._async["make_response"]),
                      "websocket": AsgiWebSocket.replacing(eio._async["websocket"])}
