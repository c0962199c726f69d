"""Connection state recovery on python-socketio's Server and AsyncServer (issue 18): the
server's side of the protocol — the private id in the CONNECT answer, the restore a
reconnecting client asks for in its CONNECT auth, and which disconnects keep a session for the
window.

Inert unless the server's manager has recovery on (``manager.sessions``, sioctl's Redis
manager with ``--connection-state-recovery``); the records, the replay and the stream are the
manager's (``messaging/recovering.py``, ``messaging/recovery.py``).
"""

from __future__ import annotations

from typing import Any

from socketio import packet

from sioctl.worker.messaging import recovery

from .engineio_server import next_socket_id


class RecoveryServerMixin:
    """``socketio.Server`` mixin: connection state recovery (see the module docstring)."""

    def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> Any:
        server: Any = self
        sessions = getattr(server.manager, "sessions", None)
        if sessions is None:
            return super()._handle_connect(eio_sid, namespace, data)  # type: ignore[misc]
        name = namespace or "/"
        pid, restore = server.manager.start_restore(name, data)
        key = (eio_sid, name)
        sessions.connecting[key] = (pid, restore)
        try:
            if restore is None:
                return super()._handle_connect(eio_sid, namespace, data)  # type: ignore[misc]
            # python-socketio asks the engine for the socket's id: the old one.
            with next_socket_id(restore.record.sid):
                return super()._handle_connect(eio_sid, namespace, data)  # type: ignore[misc]
        finally:
            sessions.connecting.pop(key, None)

    def _send_packet(self, eio_sid: str, pkt: Any) -> Any:
        add_pid(self, pkt)
        return super()._send_packet(eio_sid, pkt)  # type: ignore[misc]

    def _handle_disconnect(self, eio_sid: str, namespace: str | None, reason: Any = None) -> Any:
        mark_leaving(self, eio_sid, namespace, reason)
        return super()._handle_disconnect(eio_sid, namespace, reason)  # type: ignore[misc]


class AsyncRecoveryServerMixin:
    """``socketio.AsyncServer`` mixin: :class:`RecoveryServerMixin` with python-socketio's
    coroutines and the manager's restore awaited."""

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> Any:
        server: Any = self
        sessions = getattr(server.manager, "sessions", None)
        if sessions is None:
            return await super()._handle_connect(eio_sid, namespace, data)  # type: ignore[misc]
        name = namespace or "/"
        pid, restore = await server.manager.start_restore(name, data)
        key = (eio_sid, name)
        sessions.connecting[key] = (pid, restore)
        try:
            if restore is None:
                return await super()._handle_connect(  # type: ignore[misc]
                    eio_sid, namespace, data)
            with next_socket_id(restore.record.sid):
                return await super()._handle_connect(  # type: ignore[misc]
                    eio_sid, namespace, data)
        finally:
            sessions.connecting.pop(key, None)

    async def _send_packet(self, eio_sid: str, pkt: Any) -> Any:
        add_pid(self, pkt)
        return await super()._send_packet(eio_sid, pkt)  # type: ignore[misc]

    async def _handle_disconnect(self, eio_sid: str, namespace: str | None,
                                 reason: Any = None) -> Any:
        mark_leaving(self, eio_sid, namespace, reason)
        return await super()._handle_disconnect(  # type: ignore[misc]
            eio_sid, namespace, reason)


def add_pid(server: Any, pkt: Any) -> None:
    """A CONNECT answer (python-socketio's ``{"sid": sid}``) gets the socket's private id."""
    if pkt.packet_type == packet.CONNECT and isinstance(pkt.data, dict):
        pid = getattr(server.manager, "pid_of", lambda *_: None)(
            pkt.data.get("sid"), pkt.namespace or "/")
        if pid is not None:
            pkt.data = {**pkt.data, "pid": pid}


def mark_leaving(server: Any, eio_sid: str, namespace: str | None, reason: Any) -> None:
    """A socket whose session dropped in a way it may come back from (python-engineio's
    reason: transport close or error, ping timeout): the manager keeps its record for the
    window when it lets it go."""
    sessions = getattr(server.manager, "sessions", None)
    if sessions is not None and reason in recovery.RECOVERABLE:
        name = namespace or "/"
        sid = server.manager.sid_from_eio_sid(eio_sid, name)
        if sid is not None:
            sessions.leaving.add((name, sid))
