"""The local delivery of an emit with the per-recipient work done once (issue 19, the
broadcast write path).

python-socketio's ``Manager.emit`` / ``AsyncManager.emit`` encode an emit without a callback
once, then hand each recipient the same Engine.IO packet through ``server._send_eio_packet``
(asyncio: one task per recipient, all awaited), where every recipient works out again the same
websocket frame, clock reading and logging level. :class:`FanoutMixin` (eventlet) and
:class:`AsyncFanoutMixin` work those out once per emit and hand each recipient's session the
packet with them in one call: ``ConformantSocket.write_frame`` / ``AsyncConformantSocket.
write_frame_now`` (without awaiting): the frame written to the socket or transport when the
session can take it, else the packet queued in order. A session sioctl did not make, a closed
one, and under asyncio one that declines (EIO=3, closing, past its ping timeout) go through
python-socketio's ``_send_eio_packet``. Emits with a callback (a packet per recipient) are
python-socketio's.

Each is a subclass of python-socketio's in-memory manager placed after the pub/sub manager in a
manager's bases, so that the pub/sub manager's local delivery (``super().emit`` in its
``_handle_emit``) reaches it, and its own ``emit`` (the publish) does not; ``FanoutManager`` /
``FanoutAsyncManager`` are the in-memory managers of a worker without Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet

from sioctl.worker.protocol.core import ws_frame


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
        server: Any = self.server
        skipped, shared = fan_out_packets(server, event, data, namespace, skip_sid)
        sessions = server.eio.sockets
        now = time.time()  # for the ping timeout: the loop does not await
        log = server.eio.logger.isEnabledFor(logging.INFO)
        tasks = []
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skipped:
                continue
            write = getattr(sessions.get(eio_sid), "write_frame_now", None)
            for pkt, frame in shared:
                # A session either takes every packet of the emit this way or none (what it
                # answers does not change without an await), so each socket's order is kept.
                if write is None or not write(pkt, frame, now, log):
                    tasks.append(asyncio.create_task(server._send_eio_packet(eio_sid, pkt)))
        if tasks:
            await asyncio.wait(tasks)


class FanoutMixin(socketio.Manager):
    """``Manager.emit`` with the per-recipient work of a fan-out done once (eventlet).

    python-socketio hands each recipient the shared packet through ``server._send_eio_packet``
    (then ``ConformantSocket.write_shared``), each recipient working out again the same frame,
    clock reading and logging level. Here they are worked out once per emit, and each
    recipient costs one call: ``ConformantSocket.write_frame`` (a session sioctl did not make,
    or a closed one, goes through ``_send_eio_packet``, as python-socketio does). Placed after
    the pub/sub manager in a manager's bases, as :class:`AsyncFanoutMixin`.
    """

    def emit(self, event: str, data: Any, namespace: str, room: Any = None,
             skip_sid: Any = None, callback: Any = None, to: Any = None,
             **kwargs: Any) -> None:
        # python-socketio's Manager.emit (5.18) up to its packets, tracked in
        # worker/library_contract.py; the per-recipient send is what differs.
        if callback or namespace not in self.rooms:
            super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                         callback=callback, to=to, **kwargs)
            return
        server: Any = self.server
        skipped, shared = fan_out_packets(server, event, data, namespace, skip_sid)
        sessions = server.eio.sockets
        now = time.time()  # for the ping timeout: the loop does not yield
        log = server.eio.logger.isEnabledFor(logging.INFO)
        send_eio_packet = server._send_eio_packet
        for sid, eio_sid in self.get_participants(namespace, to or room):
            if sid in skipped:
                continue
            session = sessions.get(eio_sid)
            write = getattr(session, "write_frame", None)
            if write is None or session.closed:  # a closed one: python-engineio's warning
                for pkt, _ in shared:
                    send_eio_packet(eio_sid, pkt)
            else:
                for pkt, frame in shared:
                    write(pkt, frame, now, log)


class FanoutManager(FanoutMixin):
    """python-socketio's in-memory ``Manager`` with :class:`FanoutMixin`'s local delivery (a
    worker without Redis)."""


class FanoutAsyncManager(AsyncFanoutMixin):
    """python-socketio's in-memory ``AsyncManager`` with :class:`AsyncFanoutMixin`'s local
    delivery (a worker without Redis)."""


def fan_out_packets(server: Any, event: str, data: Any, namespace: str, skip_sid: Any,
                    decoded: bool = False) -> tuple[list[Any], list[tuple[Any, Any]]]:
    """The sids to skip, and each Engine.IO packet of the emit with its websocket frame
    (``ws_frame.shared_frame``), built once for every recipient, as python-socketio's
    ``emit`` builds its packets (5.18, tracked in the library contracts). ``decoded``: the
    data was decoded from JSON (another worker's message), so it holds no bytes, and
    python-socketio's packet is told so (``binary=False``) rather than walking it."""
    if isinstance(data, tuple):
        data = list(data)
    elif data is not None:
        data = [data]
    else:
        data = []
    skipped = skip_sid if isinstance(skip_sid, list) else [skip_sid]
    packet_class = server.packet_class
    if decoded and issubclass(packet_class, packet.Packet):
        encoded = packet_class(packet.EVENT, namespace=namespace, data=[event] + data,
                               binary=False).encode()
    else:
        encoded = packet_class(packet.EVENT, namespace=namespace, data=[event] + data).encode()
    eio_pkts = [eio_packet.Packet(eio_packet.MESSAGE, p)
                for p in (encoded if isinstance(encoded, list) else [encoded])]
    return skipped, [(pkt, ws_frame.shared_frame(pkt)) for pkt in eio_pkts]
