"""Engine.IO protocol 3 and Socket.IO protocol v4 (Socket.IO v2 clients) on python-engineio's
and python-socketio's asyncio classes (async shell; the rules are :mod:`.core.eio3_rules`,
:mod:`.core.eio3_payload` and :mod:`.core.sio_v4`, as for the sync shells :mod:`.eio3`,
:mod:`.eio3_handshake` and :mod:`.sio_v4`).

The asyncio worker (worker/aio) installs them with ``--allow-eio3``;
tests/unit/worker/protocol/test_protocol_async.py also drives them in process.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

from engineio import exceptions, packet

from .async_engineio import AsyncConformantSocket
from .core import eio3_rules
from .core.eio3_rules import REFUSAL, Eio3Packet, jsonp_index, wants_eio3
from .core.sio_v4 import incoming_connect, outgoing, v2_socket_id
from .eio3 import Eio3SessionBase
from .eio3_handshake import OPENING, ORIGINAL_QUERY, Eio3DoorBase, opening_for
from .engineio_server import next_socket_id
from .ping_interval import advertised_ping_interval
from .socketio_rules import namespace_served


class AsyncEio3Session(Eio3SessionBase, AsyncConformantSocket):
    """An asyncio Engine.IO session of protocol 3 (see :class:`.eio3.Eio3Session`)."""

    async def send(self, pkt: packet.Packet) -> None:
        if pkt.packet_type == packet.OPEN and isinstance(pkt.data, dict):
            pkt = packet.Packet(packet.OPEN, eio3_rules.open_data(pkt.data))
        await super().send(Eio3Packet(pkt, self))

    def write_shared_now(self, pkt: packet.Packet) -> bool:
        """A fan-out's packet: framed the v3 way, by this session's ``send`` (awaited by the
        caller)."""
        return False

    def write_frame_now(self, pkt: packet.Packet, frame: bytes | None, now: float,
                        log: bool) -> bool:
        """As ``write_shared_now``: the v4 ``frame`` is not for this session."""
        return False

    async def receive(self, pkt: packet.Packet) -> None:
        self.heard_from_client()
        answer = eio3_rules.answer_to(pkt)
        if answer is not None:
            await self.send(answer)
            return
        await super().receive(pkt)

    def schedule_ping(self) -> None:
        """v3 > Timeouts: the client sends the pings; the server never does."""

    async def check_ping_timeout(self) -> bool:
        if self.closed:
            raise exceptions.SocketIsClosedError()
        if eio3_rules.silent_too_long(time.monotonic(), self.last_received,
                                      advertised_ping_interval(self.server),
                                      self.server.ping_timeout):
            self.server.logger.info("%s: no ping from the EIO=3 client, closing", self.sid)
            await self.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT)
            return False
        return True

    async def poll(self) -> list[packet.Packet]:
        """The queued packets; an idle v3 poll ends with a noop (only the heartbeat decides
        that a client is gone)."""
        try:
            packets: list[packet.Packet] = await super().poll()
        except exceptions.QueueEmpty:
            return [packet.Packet(packet.NOOP)]
        return packets

    def handle_get_request(self, environ: dict[str, Any]) -> Any:
        """A plain call returning the request's awaitable (see the v4 session's)."""
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if query.get("transport") == ["websocket"]:
            self.websocket_b64 = "b64" in query
            return super().handle_get_request(environ)
        return self._eio3_polling_get(environ, query)

    async def _eio3_polling_get(self, environ: dict[str, Any],
                                query: dict[str, list[str]]) -> Any:
        packets = await super().handle_get_request(environ)
        return self.polling_response(packets, jsonp_index(query))


class AsyncEio3DoorMixin(Eio3DoorBase):
    """``engineio.AsyncServer`` mixin: the EIO=3 door (see
    :class:`.eio3_handshake.Eio3DoorMixin`), screening the request the async engine mixin has
    translated."""

    _sioctl_eio3_session = AsyncEio3Session

    async def _sioctl_screen(self, environ: dict[str, Any]) -> tuple[bool, Any]:
        server: Any = self
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if wants_eio3(query):
            if not self.allow_eio3:
                server._log_error_once(REFUSAL, "sioctl-eio3-refused")
                return True, await server._make_response(server._bad_request(REFUSAL), environ)
            environ[ORIGINAL_QUERY] = environ.get("QUERY_STRING", "")
            environ["QUERY_STRING"] = eio3_rules.as_eio4_query(query)
        elif "sid" in query:
            session = server.sockets.get(query["sid"][0])
            if isinstance(session, AsyncEio3Session) and not session.closed:
                await session.check_ping_timeout()
            if isinstance(session, AsyncEio3Session) and session.closed:
                server.sockets.pop(query["sid"][0], None)
        answer: tuple[bool, Any] = await super()._sioctl_screen(environ)  # type: ignore[misc]
        return answer

    def _handle_connect(self, environ: dict[str, Any], transport: str,
                        jsonp_index: int | None = None) -> Any:
        """A plain call returning the awaitable of python-engineio's ``_handle_connect`` (a
        websocket-only session's request waits under it for the connection's life), through
        the EIO=3 opening when the request is a v3 client's."""
        opening = opening_for(environ, jsonp_index)
        if opening is None:
            return super()._handle_connect(  # type: ignore[misc]
                environ, transport, jsonp_index)
        return self._eio3_connect(opening, environ, transport, jsonp_index)

    async def _eio3_connect(self, opening: Any, environ: dict[str, Any], transport: str,
                            jsonp_index: int | None) -> Any:
        token = OPENING.set(opening)
        try:
            return await super()._handle_connect(  # type: ignore[misc]
                environ, transport, jsonp_index)
        finally:
            OPENING.reset(token)


def is_v2_client(server: Any, eio_sid: str) -> bool:
    """Whether the Engine.IO session ``eio_sid`` is one of a Socket.IO v2 client (EIO=3)."""
    return isinstance(server.eio.sockets.get(eio_sid), AsyncEio3Session)


class AsyncSocketIOv4Mixin:
    """``socketio.AsyncServer`` mixin: protocol v4 for the sessions of Socket.IO v2 clients
    (see :class:`.sio_v4.SocketIOv4Mixin`); before the async rules' mixin."""

    _sioctl_state: Any

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        result = await super()._handle_eio_connect(eio_sid, environ)  # type: ignore[misc]
        if is_v2_client(self, eio_sid):
            server: Any = self
            if namespace_served(server, "/"):
                self._sioctl_state.implicit_connect(eio_sid)
                await server._handle_connect(eio_sid, "/", None)
                if server.manager.sid_from_eio_sid(eio_sid, "/") is None:
                    self._sioctl_state.connect_refused(eio_sid)
        return result

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> Any:
        if not is_v2_client(self, eio_sid):
            return await super()._handle_connect(eio_sid, namespace, data)  # type: ignore[misc]
        with next_socket_id(v2_socket_id(eio_sid, namespace or "/")):
            return await super()._handle_connect(eio_sid, namespace, data)  # type: ignore[misc]

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> Any:
        if isinstance(data, str) and is_v2_client(self, eio_sid):
            data = incoming_connect(data)
        return await super()._handle_eio_message(eio_sid, data)  # type: ignore[misc]

    async def _send_packet(self, eio_sid: str, pkt: Any) -> Any:
        if is_v2_client(self, eio_sid):
            pkt = outgoing(pkt, self.packet_class)  # type: ignore[attr-defined]
        return await super()._send_packet(eio_sid, pkt)  # type: ignore[misc]
