"""Where a message goes: the shared channel, one worker's channel, or nowhere.

Targeted delivery (see ``manager``): a message for one socket goes to the channel of the worker
that owns it; a message for a room, for everyone, or for a socket nobody claims goes to the
shared channel; a callback goes back to the worker that asked. These are the decisions, as
pure functions: the caller looks the facts up (is the socket here? whose is it, per the owner
cache or Redis?) in its own engine's way and passes them in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .envelope import (
    forwarded,
    namespace_of,
    owner_key,
    target_of,
    worker_channel,
    worker_of,
)


def route(data: dict[str, Any], channel: str, local: bool, owner: str | None) -> str | None:
    """The channel to publish ``data`` on, None when nobody else needs it.

    ``channel``: the shared channel; ``local``: whether the socket ``target_of(data)``
    addresses is connected here (handled locally already); ``owner``: the host id owning it,
    None when nobody (a room, or a socket not connected anywhere yet). Look ``owner`` up only
    when ``needs_owner(data, local)``."""
    if data.get("method") == "callback":
        return worker_channel(channel, data["host_id"])
    if target_of(data) is None:
        return channel
    if local:
        return None
    if owner is not None:
        return worker_channel(channel, owner)
    return channel


def needs_owner(data: dict[str, Any], local: bool) -> bool:
    """Whether ``route`` depends on who owns the socket ``data`` addresses (a lookup)."""
    return (data.get("method") != "callback" and not local
            and isinstance(target_of(data), str))


def guard(data: dict[str, Any], channel: str, to: str) -> tuple[str, str] | None:
    """Streams mode: (owner record key, host id) that must still match for a message sent to
    worker channel ``to`` to be added to its stream (``outbox.GUARDED_XADD``); None for the
    shared channel and for callbacks (the asking worker's channel, not a socket's owner)."""
    owner = worker_of(to, channel)
    if owner is None or data.get("method") == "callback":
        return None
    return owner_key(channel, namespace_of(data), target_of(data)), owner


def unheard(data: dict[str, Any], to: str, channel: str) -> dict[str, Any] | None:
    """A message for worker channel ``to`` that nobody received (that worker is gone, or the
    sender's owner cache was stale): the message to send on the shared channel instead, where
    the socket's worker, if any, takes it; None when there is nothing to pass on."""
    if worker_of(to, channel) is None or target_of(data) is None:
        return None
    # A live worker whose subscription had dropped for a moment gets it this way too; "orig"
    # tells it not to count as lost what it will see a gap for on its channel.
    seq = data.get("seq")
    return forwarded(data, (to, seq) if isinstance(seq, int) else None)


def misdelivered(data: dict[str, Any], heard_on: str, own_channel: str,
                 holds: Callable[[Any, str], bool]) -> bool:
    """Whether a message heard on this worker's own channel targets one socket this worker
    does not hold (``holds(sid, namespace)``: connected or connecting here), so it must be
    passed on (``envelope.forwarded``) to the shared channel. That happens on a stale owner
    record: the socket now lives on another worker, e.g. an ``io.generate_id`` id that
    reconnected elsewhere. A message forwarded already is never passed on again."""
    if heard_on != own_channel or data.get("forwarded"):
        return False
    target = target_of(data)
    return target is not None and not holds(target, namespace_of(data))
