"""The local delivery of an emit without a call or a task per recipient through
python-socketio (issue 19, the broadcast write path).

python-socketio's ``Manager.emit`` / ``AsyncManager.emit`` encode an emit without a callback
once, then hand each recipient the same Engine.IO packet through ``server._send_eio_packet``
(asyncio: one task per recipient, all awaited). :class:`FanoutMixin` and
:class:`AsyncFanoutMixin` make the same packets (``fanout_packets``) and hand them to each
session directly: ``ConformantSocket.write_shared`` (eventlet) or ``AsyncConformantSocket.
write_shared_now`` (asyncio, without awaiting): the websocket frame, encoded once, written to
the socket or transport when the session can take it, else queued in order. A session without
that method (an engine.io session sioctl did not make), a closed one, and under asyncio one that
declines (EIO=3, closing, past its ping timeout) go through python-socketio's
``_send_eio_packet``. Emits with a callback (a packet per recipient) are python-socketio's.

Each is a subclass of python-socketio's in-memory manager placed after the pub/sub manager in a
manager's bases, so that the pub/sub manager's local delivery (``super().emit`` in its
``_handle_emit``) reaches it and its own ``emit`` (the publish) does not; ``FanoutManager`` /
``FanoutAsyncManager`` are the in-memory managers of a worker without Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet


def fanout_packets(server: Any, event: str, data: Any, namespace: str) -> list[Any]:
    """The Engine.IO packets of an emit without a callback, made once for every recipient:
    python-socketio's ``Manager.emit`` (5.18) up to its packets (data as a list, one EVENT
    packet encoded once, one Engine.IO MESSAGE per part: a binary emit has its attachments),
    tracked in worker/library_contract*.py."""
    if isinstance(data, tuple):
        data = list(data)
    elif data is not None:
        data = [data]
    else:
        data = []
    encoded = server.packet_class(packet.EVENT, namespace=namespace,
                                  data=[event] + data).encode()
    return [eio_packet.Packet(eio_packet.MESSAGE, p)
            for p in (encoded if isinstance(encoded, list) else [encoded])]


class FanoutMixin(socketio.Manager):
    """``Manager.emit`` without a call through the server per recipient (see the module
    docstring)."""

    def emit(self, event: str, data: Any, namespace: str, room: Any = None,
             skip_sid: Any = None, callback: Any = None, to: Any = None,
             **kwargs: Any) -> None:
        if callback or namespace not in self.rooms:
            super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                         callback=callback, to=to, **kwargs)
            return
        skipped = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        server: Any = self.server
        eio_pkts = fanout_packets(server, event, data, namespace)
        sessions = server.eio.sockets
        for sid, eio_sid in self.get_participants(namespace, to or room):
            if sid in skipped:
                continue
            session = sessions.get(eio_sid)
            write = getattr(session, "write_shared", None)
            for pkt in eio_pkts:
                if write is None or session.closed:
                    server._send_eio_packet(eio_sid, pkt)  # python-engineio's warning
                else:
                    write(pkt)


class FanoutManager(FanoutMixin):
    """python-socketio's in-memory ``Manager`` with :class:`FanoutMixin`'s local delivery (a
    worker without Redis)."""


class AsyncFanoutMixin(socketio.AsyncManager):
    """``AsyncManager.emit`` without a task per recipient (see the module docstring)."""

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None,
                   skip_sid: Any = None, callback: Any = None, to: Any = None,
                   **kwargs: Any) -> None:
        if callback or namespace not in self.rooms:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                               callback=callback, to=to, **kwargs)
            return
        skipped = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        server: Any = self.server
        eio_pkts = fanout_packets(server, event, data, namespace)
        sessions = server.eio.sockets
        tasks = []
        for sid, eio_sid in self.get_participants(namespace, to or room):
            if sid in skipped:
                continue
            write = getattr(sessions.get(eio_sid), "write_shared_now", None)
            for pkt in eio_pkts:
                # A session either takes every packet of the emit this way or none (what it
                # answers does not change without an await), so each socket's order is kept.
                if write is None or not write(pkt):
                    tasks.append(asyncio.create_task(server._send_eio_packet(eio_sid, pkt)))
        if tasks:
            await asyncio.wait(tasks)


class FanoutAsyncManager(AsyncFanoutMixin):
    """python-socketio's in-memory ``AsyncManager`` with :class:`AsyncFanoutMixin`'s local
    delivery (a worker without Redis)."""
