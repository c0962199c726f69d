"""Socket.IO v5 rules on python-socketio's ``AsyncServer`` (async shell; the rules are
:mod:`.core.sio_rules` and :mod:`.core.sio_connect`, the same as the sync shell
:mod:`.socketio_rules` uses).

:class:`AsyncConformantServerMixin` is :class:`.socketio_rules.ConformantServerMixin` with
python-socketio's coroutines awaited and the connect sweep an asyncio task. The asyncio worker
(worker/aio) installs it; tests/unit/worker/protocol/test_protocol_async.py also drives it in
process. Socket.IO protocol v4 (v2 clients) on asyncio: :mod:`.async_eio3`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
from socketio import packet

from .core import sio_rules
from .core.sio_connect import ConnectState
from .core.sio_rules import InvalidPacket
from .socketio_rules import namespace_served


class AsyncConformantServerMixin:
    """``socketio.AsyncServer`` mixin: packet validation, the CONNECT-first rule, the
    connect timeout and the ``CONNECT_ERROR`` shape for unknown namespaces. State lives in
    ``_sioctl_state`` (set by :func:`.socketio_rules.adopt`)."""

    _sioctl_state: ConnectState

    def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        """python-socketio's ``handle_request`` (the Engine.IO server's), returning that
        awaitable instead of awaiting it in a coroutine of its own: a websocket's request is
        suspended under it for the connection's life (~400 bytes per idle websocket)."""
        server: Any = self
        return server.eio.handle_request(*args, **kwargs)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        if self._sioctl_state.session_opens(eio_sid, asyncio.get_running_loop().time()):
            server: Any = self
            server.start_background_task(self._sioctl_sweep_unconnected)
        return await super()._handle_eio_connect(eio_sid, environ)  # type: ignore[misc]

    async def _sioctl_sweep_unconnected(self) -> None:
        """Close the sessions that have not connected to any namespace ``connect_timeout`` s
        after opening: one task for the server, looking every second (or half the timeout)."""
        server: Any = self
        state = self._sioctl_state
        loop = asyncio.get_running_loop()
        while True:
            await server.sleep(state.sweep_pause())
            for eio_sid in state.overdue(loop.time(), server.environ):
                await self._sioctl_close(eio_sid, state.overdue_reason())

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> Any:
        server: Any = self
        pending = server._binary_packet.get(eio_sid)
        if pending is not None:
            try:
                pending.sioctl_bytes = sio_rules.count_attachment(
                    pending, data, server.packet_class, server.eio.max_http_buffer_size)
            except InvalidPacket as exc:
                server._binary_packet.pop(eio_sid, None)
                await self._sioctl_close_in_task(eio_sid, str(exc))
                return None
            return await super()._handle_eio_message(eio_sid, data)  # type: ignore[misc]
        try:
            pkt = sio_rules.decode_client_packet(
                data, server.packet_class, getattr(server, "events_checking_depth", ()))
            self._sioctl_state.packet_arrives(eio_sid, pkt.packet_type)
        except InvalidPacket as exc:
            await self._sioctl_close_in_task(eio_sid, str(exc))
            return None
        await self._sioctl_dispatch(eio_sid, pkt)
        return None

    async def _sioctl_dispatch(self, eio_sid: str, pkt: Any) -> None:
        """Hand a checked packet to python-socketio's handler for its type. Tracks upstream:
        python-socketio's ``AsyncServer._handle_eio_message`` after its decode line, as the
        sync shell's ``_sioctl_dispatch`` tracks the sync one."""
        server: Any = self
        kind = pkt.packet_type
        if kind == packet.CONNECT:
            await server._handle_connect(eio_sid, pkt.namespace, pkt.data)
        elif kind == packet.DISCONNECT:
            await server._handle_disconnect(eio_sid, pkt.namespace,
                                            server.reason.CLIENT_DISCONNECT)
        elif kind == packet.EVENT:
            self._sioctl_state.events_received += 1
            await server._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind == packet.ACK:
            await server._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif not server.manager.sid_from_eio_sid(eio_sid, pkt.namespace or "/"):
            server.logger.warning("binary packet from %s for a namespace it has not joined",
                                  eio_sid)
        else:
            if kind == packet.BINARY_EVENT:
                self._sioctl_state.events_received += 1
            server._binary_packet[eio_sid] = pkt  # BINARY_EVENT / BINARY_ACK: attachments next

    async def emit(self, *args: Any, **kwargs: Any) -> Any:
        """python-socketio's emit, counted for the metrics (send() and call() emit too)."""
        self._sioctl_state.emits += 1
        return await super().emit(*args, **kwargs)  # type: ignore[misc]

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> Any:
        server: Any = self
        name = namespace or "/"
        if not namespace_served(server, name):
            await server._send_packet(eio_sid, server.packet_class(
                packet.CONNECT_ERROR, data=sio_rules.connect_error_data(), namespace=name))
            return None
        return await super()._handle_connect(eio_sid, namespace, data)  # type: ignore[misc]

    async def _handle_eio_disconnect(self, eio_sid: str, *args: Any) -> Any:
        self._sioctl_state.session_closes(eio_sid)
        return await super()._handle_eio_disconnect(eio_sid, *args)  # type: ignore[misc]

    async def _sioctl_close_in_task(self, eio_sid: str, why: str) -> None:
        """:meth:`_sioctl_close`, in a task of its own when no task is current (an EVENT
        message read in the protocol's callback, :func:`events_dispatch_inline`): the close
        runs the application's disconnect handlers, which may rely on a current task
        (``asyncio.timeout``). Awaiting it keeps the reader's order: it reads on after it."""
        if asyncio.current_task() is None:
            await asyncio.ensure_future(self._sioctl_close(eio_sid, why))
        else:
            await self._sioctl_close(eio_sid, why)

    async def _sioctl_close(self, eio_sid: str, why: str) -> None:
        """Close the Engine.IO session now (not ``eio.disconnect()``, which waits for a
        polling client to read the CLOSE packet); the client sees its transport end."""
        server: Any = self
        server.eio._log_error_once(
            f"closing session {eio_sid}: {why}", f"sioctl-invalid-sio-{why.split(' (')[0]}"
        )
        session = server.eio.sockets.get(eio_sid)
        if session is not None and not session.closed:
            await session.close(wait=False, abort=False,
                                reason=server.eio.reason.TRANSPORT_ERROR)


def events_dispatch_inline(eio_server: Any) -> bool:
    """True when the Socket.IO EVENT packets the Engine.IO server ``eio_server`` receives are
    dispatched by python-socketio's own path through this mixin: the packet checked, then the
    handler started in a task of its own (``async_handlers``), no application code run and
    nothing awaited on the way (only an invalid packet's close waits). A reader of the
    protocol's callbacks may then give such a message to the session in the callback, without
    a task of its own (:mod:`.async_ws_reader`). False for a server whose class changes that
    path, or a message handler that is not the server's own."""
    handlers = getattr(eio_server, "handlers", None) or {}
    server = getattr(handlers.get("message"), "__self__", None)
    if not isinstance(server, AsyncConformantServerMixin):
        return False
    cls: Any = type(server)
    # Each class defining _handle_eio_message is python-socketio's or one of this package's
    # (the rules, the v2 clients' translation of CONNECT): none that an application wrote.
    package = __name__.rpartition(".")[0]
    own = all(klass.__module__.partition(".")[0] == "socketio"
              or klass.__module__.rpartition(".")[0] == package
              for klass in cls.__mro__ if "_handle_eio_message" in vars(klass))
    return (own and getattr(server, "async_handlers", False) is True
            and cls._sioctl_dispatch is AsyncConformantServerMixin._sioctl_dispatch
            and cls._handle_event is socketio.AsyncServer._handle_event
            and cls.start_background_task is socketio.AsyncServer.start_background_task)
