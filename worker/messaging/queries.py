"""Questions to every worker: who is in a room, and make them join, leave or go.

The equivalents of socket.io's ``fetchSockets``, ``socketsJoin``, ``socketsLeave`` and
``disconnectSockets`` across workers and nodes. A request goes out on the shared channel; each
worker answers on the asker's own channel; the asker waits for as many answers as there are
subscribers to the shared channel (``PUBSUB NUMSUB``), or until the timeout, when it raises
:class:`QueryTimeout` saying how many answered (with what they said).

This is the eventlet shell: the Redis calls, the wait and the changes to the manager's rooms.
Who was asked, which answers count and whether the result is whole live in :mod:`.tally`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from . import tally
from .sharded import numsub
from .tally import KINDS, QUERY, REPLY, QueryTimeout

if TYPE_CHECKING:
    from .manager import SioctlRedisManager

__all__ = ["KINDS", "QUERY", "REPLY", "Queries", "QueryTimeout"]


class Queries:
    """The asking and the answering side of one worker's manager."""

    def __init__(self, manager: SioctlRedisManager) -> None:
        self.manager = manager
        self.tallies = tally.Tallies(manager.host_id)
        # The event each open question's asker waits on, by request id.
        self.waiting: dict[str, Any] = {}

    # ---------------------------------------------------------------------------- asking

    def ask(self, kind: str, room: str | None, namespace: str, timeout: float,
            **extra: Any) -> list[dict[str, Any]]:
        """Every worker's answer to ``kind`` for the sockets in ``room`` (all when None);
        raises QueryTimeout when some do not answer within ``timeout`` seconds."""
        m = self.manager
        request_id = uuid.uuid4().hex
        answers = self.tallies.start(request_id, self._workers())
        done = self.waiting[request_id] = m.server.eio.create_event()
        request = tally.question(kind, room, namespace, request_id, m.host_id, m.own_channel,
                                 **extra)
        try:
            self._answer(request)  # this worker answers itself without Redis
            if not answers.complete:
                m.publish_raw(m.channel, request)
                done.wait(timeout)
        finally:
            self.tallies.stop(request_id)
            self.waiting.pop(request_id, None)
        return answers.result(timeout)

    def _workers(self) -> int:
        """How many workers listen on the shared channel now (at least this one)."""
        try:
            return tally.expected_workers(numsub(self.manager.redis, self.manager.channel))
        except Exception:
            return 1

    # ------------------------------------------------------------------------- answering

    def handle(self, message: dict[str, Any]) -> bool:
        """Take a query or a reply off the channel; False for anything else."""
        heard = self.tallies.heard(message)
        if heard.answer:
            self._answer(message)
        elif heard.completed is not None:
            done = self.waiting.get(str(message.get("request_id")))
            if done is not None:
                done.set()
        return heard.ours

    def _answer(self, request: dict[str, Any]) -> None:
        m = self.manager
        local = answer_here(m, request)
        if local is None:
            return
        answer, namespace, to_disconnect = local
        for sid in to_disconnect:
            m.server.disconnect(sid, namespace=namespace, ignore_queue=True)
        channel = tally.reply_channel(request, m.host_id)
        if channel is None:
            self.handle(answer)
        else:
            m.publish_raw(channel, answer)


def answer_here(m: Any, request: dict[str, Any]) -> tuple[dict[str, Any], str, list[str]] | None:
    """This worker's part of a question, for either engine's manager (None: not one to answer):
    the reply, the namespace, and the sockets the shell must disconnect (awaited or not). Joins
    and leaves are done here: python-socketio's ``basic_enter_room``/``basic_leave_room`` are
    plain calls on both managers."""
    question = tally.answerable(request)
    if question is None:
        return None
    kind, namespace = question
    sids = [sid for sid, _ in m.get_participants(namespace, request.get("room"))]
    rooms = {sid: m.get_rooms(sid, namespace) for sid in sids} if kind == "fetch" else None
    for sid in sids:
        if kind == "join":
            m.basic_enter_room(sid, namespace, request["target"])
        elif kind == "leave":
            m.basic_leave_room(sid, namespace, request["target"])
    answer = tally.reply(request, m.host_id, sids, rooms)
    return answer, namespace, sids if kind == "disconnect" else []
