"""Questions to every worker: who is in a room, and make them join, leave or go.

The equivalents of socket.io's ``fetchSockets``, ``socketsJoin``, ``socketsLeave`` and
``disconnectSockets`` across workers and nodes. A request goes out on the shared channel; each
worker answers on the asker's own channel; the asker waits for as many answers as there are
subscribers to the shared channel (``PUBSUB NUMSUB``), or until the timeout, when it raises
:class:`QueryTimeout` saying how many answered (with what they said).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .manager import SioctlRedisManager

QUERY = "sioctl_query"
REPLY = "sioctl_reply"
KINDS = ("fetch", "join", "leave", "disconnect")


class QueryTimeout(Exception):
    """Not every worker answered in time; ``answers`` holds those that did."""

    def __init__(self, message: str, answers: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.answers = answers


class Pending:
    def __init__(self, event: Any, expected: int) -> None:
        self.event = event
        self.expected = expected
        self.answers: list[dict[str, Any]] = []


class Queries:
    """The asking and the answering side of one worker's manager."""

    def __init__(self, manager: SioctlRedisManager) -> None:
        self.manager = manager
        self.pending: dict[str, Pending] = {}

    # ---------------------------------------------------------------------------- asking

    def ask(self, kind: str, room: str | None, namespace: str, timeout: float,
            **extra: Any) -> list[dict[str, Any]]:
        """Every worker's answer to ``kind`` for the sockets in ``room`` (all when None)."""
        m = self.manager
        expected = self._workers()
        request_id = uuid.uuid4().hex
        pending = Pending(m.server.eio.create_event(), expected)
        self.pending[request_id] = pending
        request = {"method": QUERY, "kind": kind, "room": room, "namespace": namespace,
                   "request_id": request_id, "host_id": m.host_id, "reply_to": m.own_channel,
                   **extra}
        try:
            self._answer(request)  # this worker answers itself without Redis
            if len(pending.answers) < expected:
                m.publish_raw(m.channel, request)
                pending.event.wait(timeout)
        finally:
            self.pending.pop(request_id, None)
        if len(pending.answers) < expected:
            raise QueryTimeout(
                f"{len(pending.answers)} of {expected} workers answered within {timeout:g}s",
                pending.answers,
            )
        return pending.answers

    def _workers(self) -> int:
        """How many workers listen on the shared channel now (at least this one)."""
        try:
            counts = self.manager.redis.pubsub_numsub(self.manager.channel)
            return max(1, int(counts[0][1])) if counts else 1
        except Exception:
            return 1

    # ------------------------------------------------------------------------- answering

    def handle(self, message: dict[str, Any]) -> bool:
        """Take a query or a reply off the channel; False for anything else."""
        method = message.get("method")
        if method == QUERY:
            if message.get("host_id") != self.manager.host_id:
                self._answer(message)
            return True
        if method == REPLY:
            pending = self.pending.get(str(message.get("request_id")))
            if pending is not None:
                pending.answers.append(message)
                if len(pending.answers) >= pending.expected:
                    pending.event.set()
            return True
        return False

    def _answer(self, request: dict[str, Any]) -> None:
        m = self.manager
        kind, namespace = request.get("kind"), request.get("namespace") or "/"
        if kind not in KINDS:
            return
        sids = [sid for sid, _ in m.get_participants(namespace, request.get("room"))]
        reply: dict[str, Any] = {"method": REPLY, "request_id": request.get("request_id"),
                                 "host_id": m.host_id}
        if kind == "fetch":
            reply["sockets"] = [{"sid": sid, "rooms": m.get_rooms(sid, namespace)}
                                for sid in sids]
        else:
            for sid in sids:
                if kind == "join":
                    m.basic_enter_room(sid, namespace, request["target"])
                elif kind == "leave":
                    m.basic_leave_room(sid, namespace, request["target"])
                else:
                    m.server.disconnect(sid, namespace=namespace, ignore_queue=True)
            reply["count"] = len(sids)
        if request.get("host_id") == m.host_id:
            self.handle(reply)
        else:
            m.publish_raw(str(request["reply_to"]), reply)
