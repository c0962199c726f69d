"""The global queries' bookkeeping, engine-free: who was asked, which answers count, and when
a question is answered, partly answered or not a question at all.

A question (``fetch``, ``join``, ``leave``, ``disconnect``) goes to every worker on the shared
channel; each answers on the asker's own channel. The asker expects as many answers as the shared
channel has subscribers (``PUBSUB NUMSUB``, at least itself) and waits until they are all in or
the timeout passes; then :meth:`Tally.result` gives every answer or raises :class:`QueryTimeout`
with those that came. No I/O and no waiting here: ``queries.Queries`` (eventlet) publishes,
reads ``NUMSUB``, waits on an event and applies the answers to its manager; an asyncio shell
does the same by awaiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

QUERY = "sioctl_query"
REPLY = "sioctl_reply"
KINDS = ("fetch", "join", "leave", "disconnect")


class QueryTimeout(Exception):
    """Not every worker answered in time; ``answers`` holds those that did."""

    def __init__(self, message: str, answers: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.answers = answers


def expected_workers(numsub: Any) -> int:
    """How many workers a question expects answers from, given redis-py's ``pubsub_numsub``
    reply for the shared channel (``[(channel, count)]``): at least 1, this worker, which also
    counts when the reply is empty or unreadable."""
    try:
        return max(1, int(numsub[0][1])) if numsub else 1
    except (TypeError, ValueError, IndexError):
        return 1


def question(kind: str, room: str | None, namespace: str, request_id: str, host_id: str,
             reply_to: str, **extra: Any) -> dict[str, Any]:
    """The message asking every worker ``kind`` about the sockets in ``room`` (all when None);
    ``reply_to`` is the asker's own channel, ``extra`` the kind's arguments (``target``)."""
    return {"method": QUERY, "kind": kind, "room": room, "namespace": namespace,
            "request_id": request_id, "host_id": host_id, "reply_to": reply_to, **extra}


class Tally:
    """The answers to one question, and how many it waits for."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.answers: list[dict[str, Any]] = []

    @property
    def complete(self) -> bool:
        """Every expected worker has answered."""
        return len(self.answers) >= self.expected

    def add(self, answer: dict[str, Any]) -> bool:
        """Count ``answer``; True when it completes the question (the asker stops waiting)."""
        self.answers.append(answer)
        return len(self.answers) == self.expected

    def result(self, timeout: float) -> list[dict[str, Any]]:
        """Every answer, once the asker stops waiting (complete, or after ``timeout`` seconds);
        raises QueryTimeout saying how many of how many answered, with their answers."""
        if not self.complete:
            raise QueryTimeout(
                f"{len(self.answers)} of {self.expected} workers answered within {timeout:g}s",
                self.answers,
            )
        return self.answers


@dataclass(frozen=True)
class Heard:
    """What a message from the channel is to the queries: ``answer`` (a question to answer),
    ``completed`` (the tally a reply has just completed: wake its asker), or neither
    (``ours`` False: not a query message at all, for the manager to handle)."""

    ours: bool
    answer: bool = False
    completed: Tally | None = None


class Tallies:
    """The open questions of one worker (``host_id``), by request id."""

    def __init__(self, host_id: str) -> None:
        self.host_id = host_id
        self.open: dict[str, Tally] = {}

    def start(self, request_id: str, expected: int) -> Tally:
        """Open the question ``request_id``, expecting ``expected`` answers."""
        tally = self.open[request_id] = Tally(expected)
        return tally

    def stop(self, request_id: str) -> None:
        """Forget the question: answers arriving later are dropped."""
        self.open.pop(request_id, None)

    def heard(self, message: dict[str, Any]) -> Heard:
        """Sort ``message`` (see :class:`Heard`); a reply is counted here. This worker's own
        questions come back on the shared channel: it has answered them already, without
        Redis, so they are ours but not to answer."""
        method = message.get("method")
        if method == QUERY:
            return Heard(ours=True, answer=message.get("host_id") != self.host_id)
        if method != REPLY:
            return Heard(ours=False)
        tally = self.open.get(str(message.get("request_id")))
        if tally is not None and tally.add(message):
            return Heard(ours=True, completed=tally)
        return Heard(ours=True)


def answerable(request: dict[str, Any]) -> tuple[str, str] | None:
    """``(kind, namespace)`` of a question this worker can answer; None for an unknown kind
    (from a newer worker, say), which is left unanswered."""
    kind = request.get("kind")
    if kind not in KINDS:
        return None
    return str(kind), request.get("namespace") or "/"


def reply(request: dict[str, Any], host_id: str, sids: list[str],
          rooms: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """This worker's answer to ``request`` about its sockets ``sids``: for ``fetch`` each with
    its ``rooms``; for the others how many it joined, made leave or disconnected."""
    answer: dict[str, Any] = {"method": REPLY, "request_id": request.get("request_id"),
                              "host_id": host_id}
    if request.get("kind") == "fetch":
        answer["sockets"] = [{"sid": sid, "rooms": (rooms or {}).get(sid, [])} for sid in sids]
    else:
        answer["count"] = len(sids)
    return answer


def reply_channel(request: dict[str, Any], host_id: str) -> str | None:
    """Where the answer to ``request`` goes: None when this worker asked it (counted at once,
    without Redis), else the asker's own channel."""
    if request.get("host_id") == host_id:
        return None
    return str(request["reply_to"])
