"""The local delivery of an emit on asyncio without a task per recipient (issue 19, the
broadcast write path).

python-socketio's ``AsyncManager.emit`` encodes an emit without a callback once, then creates
one task per recipient (``_send_eio_packet``, which awaits the session's ``send``) and waits for
them all: a broadcast to N local sockets cost N tasks. :class:`AsyncFanoutMixin` hands each
recipient the same Engine.IO packet without awaiting (``AsyncConformantSocket.
write_shared_now``: the websocket frame, encoded once, written to the transport when the
session can take it, else queued in order); a task is left only for a session that does not
take it that way (an EIO=3 one, one closing). Emits with a callback (a packet per recipient)
are python-socketio's.

It is a subclass of ``socketio.AsyncManager`` placed after the pub/sub manager in a manager's
bases, so that ``AsyncPubSubManager``'s local delivery (``super().emit`` in its ``_handle_emit``)
reaches it, and its own ``emit`` (the publish) does not.
"""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet


class AsyncFanoutMixin(socketio.AsyncManager):
    """``AsyncManager.emit`` without a task per recipient (see the module docstring)."""

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None,
                   skip_sid: Any = None, callback: Any = None, to: Any = None,
                   **kwargs: Any) -> None:
        # python-socketio's AsyncManager.emit (5.18) up to its packets, tracked in
        # worker/library_contract_asyncio.py; the per-recipient send is what differs.
        if callback:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                               callback=callback, to=to, **kwargs)
            return
        room = to or room
        if namespace not in self.rooms:
            return
        if isinstance(data, tuple):
            data = list(data)
        elif data is not None:
            data = [data]
        else:
            data = []
        skipped = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        server: Any = self.server
        encoded = server.packet_class(packet.EVENT, namespace=namespace,
                                      data=[event] + data).encode()
        eio_pkts = [eio_packet.Packet(eio_packet.MESSAGE, p)
                    for p in (encoded if isinstance(encoded, list) else [encoded])]
        sessions = server.eio.sockets
        tasks = []
        for sid, eio_sid in self.get_participants(namespace, room):
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
