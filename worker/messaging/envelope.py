"""The messages workers exchange through Redis: python-socketio's, with a few fields added.

The body is python-socketio's pub/sub message (``method``, ``host_id``, ``namespace``,
``room``/``sid``...), so python-socketio's own RedisManager, write-only or not, reads and
writes the same channel. sioctl adds fields the stock manager ignores:

- ``ts``: the send time (``time.time()``), for the delivery latency the receivers measure;
- ``seq``: a per-channel sequence number of the sending worker, for the losses receivers count
  (see :mod:`.loss`); none on a callback (its ``host_id`` names its receiver, not its sender)
  nor on a forwarded message (it keeps its sender's ``host_id``);
- ``forwarded``: true on a message another worker passed on to the shared channel, with
  ``orig`` = ``[channel, seq]`` when it had been sequenced for one worker's channel;
- ``mid``: streams mode, a unique id, so a reader drops a batch the publisher sent twice.

Several messages for one worker may go as one PUBLISH, in order, as a JSON array of them
(:func:`joined`; the publisher merges the consecutive PUBLISHes of a batch to one worker's
channel, ``outbox.merged``), on that worker's *merged channel* (:func:`merged_channel`, which
its reader subscribes to besides its own): a receiver reads them with :func:`messages_in`.
A worker of an earlier sioctl, which reads one message per PUBLISH, does not listen there: a
merged PUBLISH to it reaches nobody and is passed on to the shared channel message by message
(``routing.unheard``), so a cluster whose nodes are upgraded one at a time loses nothing. The
shared channel carries one message per PUBLISH, python-socketio's.

Pure functions and plain data: no Redis, no clock of their own, no green thread — the same for
every engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# How json.dumps writes a string (its default, ensure_ascii).
_string = json.encoder.encode_basestring_ascii

# The methods that address one socket ("sid") and can go to its owner alone.
SOCKET_METHODS = frozenset({"disconnect", "enter_room", "leave_room"})
# What a worker's own channel and an owner record are named after the shared channel.
WORKER_INFIX = ":w:"
# What a worker's merged channel (several messages per PUBLISH) is named after its own.
MERGED_SUFFIX = ":m"
OWNER_INFIX = ":owner:"


def worker_channel(channel: str, host_id: str) -> str:
    """The channel of worker ``host_id`` (it listens there besides ``channel``)."""
    return f"{channel}{WORKER_INFIX}{host_id}"


def merged_channel(channel: str) -> str:
    """The merged channel of worker channel ``channel`` (several messages per PUBLISH)."""
    return f"{channel}{MERGED_SUFFIX}"


def unmerged(channel: str, shared: str) -> str:
    """The worker channel whose merged channel is ``channel``; ``channel`` itself when it is
    not a merged channel (of shared channel ``shared``'s workers)."""
    if channel.endswith(MERGED_SUFFIX):
        own = channel[: -len(MERGED_SUFFIX)]
        if worker_of(own, shared) is not None:
            return own
    return channel


def worker_of(channel: str, shared: str) -> str | None:
    """The host id whose own channel ``channel`` is, or None (the shared channel, or another)."""
    prefix = f"{shared}{WORKER_INFIX}"
    return channel[len(prefix):] if channel.startswith(prefix) else None


def owner_key(channel: str, namespace: str, sid: str) -> str:
    """The Redis key holding the host id of the worker that owns socket ``sid``."""
    return f"{channel}{OWNER_INFIX}{namespace}:{sid}"


def namespace_of(data: dict[str, Any]) -> str:
    return data.get("namespace") or "/"


def target_of(data: dict[str, Any]) -> Any:
    """The one socket (or room) a message addresses: an emit's room, a socket method's sid;
    None for a message to everyone (a broadcast, a callback, a query...)."""
    method = data.get("method")
    if method == "emit":
        return data.get("room")
    if method in SOCKET_METHODS:
        return data.get("sid")
    return None


def decode(raw: Any, loads: Any = json.loads) -> dict[str, Any] | None:
    """The message in ``raw``, or None when it is not a JSON object (ignored, as
    python-socketio ignores it)."""
    try:
        data = loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def emit_text(dumps: Callable[[Any], Any], event: str, args: list[Any], namespace: str,
              room: str, skip_sid: Any, host_id: str, ts: float, seq: int) -> str | None:
    """The JSON text of python-socketio's message for an emit of ``event`` with ``args`` to
    ``room`` (no callback, not binary), stamped with ``ts`` and ``seq``: the keys and values
    ``dumps(stamp(message))`` gives, in its order, written around ``dumps(args)`` rather than
    from a dict (~1.4 of ~4.5 µs per targeted emit). None when ``dumps`` (an app's JSON
    module) does not give text."""
    data = dumps(args)
    if type(data) is not str:
        return None
    skipped = "null" if skip_sid is None else dumps(skip_sid)
    if type(skipped) is not str:
        return None
    return (f'{{"method":"emit","event":{_string(event)},"data":{data},"binary":false,'
            f'"namespace":{_string(namespace)},"room":{_string(room)},"skip_sid":{skipped},'
            f'"callback":null,"host_id":{_string(host_id)},"ts":{float.__repr__(ts)},'
            f'"seq":{int.__repr__(seq)}}}')


def messages_in(raw: Any, loads: Any = json.loads) -> list[dict[str, Any]]:
    """The messages in ``raw``, in order: one JSON object (python-socketio's message), or a
    JSON array of them (several published at once on a worker's channel, :func:`joined`);
    none for anything else (ignored, as python-socketio ignores it)."""
    try:
        data = loads(raw)
    except ValueError:
        return []
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return [item for item in data if isinstance(item, dict)]
    return []


def joined(encoded: list[str]) -> str:
    """Several encoded messages (JSON objects) as one payload that :func:`messages_in` reads
    back in the same order."""
    return "[" + ",".join(encoded) + "]"


def is_sequenced(data: dict[str, Any]) -> bool:
    """Whether a message sent as it is gets a sequence number (a callback does not)."""
    return data.get("method") != "callback"


def stamp(data: dict[str, Any], now: float, seq: int | None = None,
          mid: str | None = None, copy: bool = True) -> dict[str, Any]:
    """A copy of ``data`` (``copy`` False: ``data`` itself) ready to send: its send time (kept
    if it has one), and ``seq`` and ``mid`` when given."""
    stamped = {**data} if copy else data
    stamped["ts"] = data.get("ts") or now
    if seq is not None:
        stamped["seq"] = seq
    if mid is not None:
        stamped["mid"] = mid
    return stamped


def forwarded(data: dict[str, Any], orig: tuple[str, int] | None = None) -> dict[str, Any]:
    """Another worker's message, to pass on to the shared channel as that worker's (its
    ``host_id`` stays, so its callbacks still come back to it). ``orig``: the channel and
    sequence number it had, so that the worker it was meant for does not count as lost what
    it will see a gap for on its channel."""
    message = {key: value for key, value in data.items() if key not in ("seq", "mid")}
    message["forwarded"] = True
    if orig is not None:
        message["orig"] = list(orig)
    return message


def sequence_of(data: dict[str, Any]) -> tuple[str, int] | None:
    """(sender host id, sequence number) of a sequenced message, else None."""
    seq, host = data.get("seq"), data.get("host_id")
    if isinstance(seq, int) and isinstance(host, str):
        return host, seq
    return None


def origin_of(data: dict[str, Any]) -> tuple[str, str, int] | None:
    """(sender host id, channel, sequence number) a forwarded message first had, else None."""
    if not data.get("forwarded"):
        return None
    orig, host = data.get("orig"), data.get("host_id")
    if (isinstance(orig, list) and len(orig) == 2 and isinstance(orig[0], str)
            and isinstance(orig[1], int) and isinstance(host, str)):
        return host, orig[0], orig[1]
    return None


class Sequencer:
    """The sequence numbers one worker gives what it publishes, one series per channel."""

    def __init__(self) -> None:
        self._sent: dict[str, int] = {}

    def next(self, channel: str) -> int:
        """The next number on ``channel`` (1 for the first message)."""
        self._sent[channel] = seq = self._sent.get(channel, 0) + 1
        return seq
