"""The seed's ``connect`` and ``disconnect`` actions: telling a client's exchange peers that it
went away, and that its identity is back.

``gateway = {"presence": False}`` turns all of it off (no notices, no records, no sweep).

Who hears what (the seed's constants table only names them, "连接成功" and "断开连接"):

- ``disconnect`` ``{socketId, userId}`` when a socket goes away, to its *peers*: the sockets it
  sent a ``sendToOthers`` to, and those that sent it one (by its userId or socket id). A socket
  whose userId lives on in another socket (taken over by a newer connection) tells only the
  sockets it sent to: for the others the userId is still there.
- ``connect`` ``{socketId, userId}`` when a socket's identity is saved for a userId it proves
  (``reconnectAndUpdates`` answered ``reconnectUpdated``, or a signed handshake's or the app's
  claim on connect), to the sockets that had exchanged with that userId, whichever side sent:
  those that sent to it, and those it sent to (a receiver heard its disconnect, so it hears
  that it is back). A fresh uuid has no peers, so a plain connect sends nothing.
- ``disconnect`` for the sockets of a worker that died without running their disconnect
  handlers (SIGKILL, a crash): a live worker notices the dead one (:func:`sweep`) and tells the
  peers of each of its sockets, unless the socket's userId lives on in a newer socket.

How peers are found across workers: a sender joins the room ``gw:peers:<target's userId>``
(rooms cross workers through the Redis manager) and remembers the targets it sent to in its
worker (``Client.peers``, at most ``MAX_PEERS``): that serves a live disconnect without asking
Redis. Both userIds also go into each other's peers set in the registry
(:mod:`.registry_presence`), which outlives the sockets by the registry's TTL: that serves the
connect notices (whichever side comes back) and the dead workers' sockets, whose ``Client``
died with them. Every notice carries ``meta.target`` null (one emit reaches several peers).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sioctl.worker.flow import Flow, call

from . import wire
from .registry import RegistryError

if TYPE_CHECKING:
    from .plugin import Client, GatewayCore

log = logging.getLogger("sioctl.gateway")

# The targets one socket remembers; the oldest is forgotten first (it then hears the target's
# disconnect only if it is in the target's peer room, which it joined when it sent).
MAX_PEERS = 256


def peer_room(user_id: str) -> str:
    """The room of the sockets that sent to ``user_id``."""
    return f"gw:peers:{user_id}"


def remember_peer(
    core: GatewayCore, sid: str, client: Client, target: str, target_sid: str
) -> Flow[None]:
    """After ``sid`` sent to ``target`` (delivered to ``target_sid``): join the target's peer
    room and remember it. One registry call for a peer addressed by socket id, the first time
    only."""
    if target_sid in client.peers or target_sid == sid or not core.config.presence:
        return
    peer_user: Any = target
    if target == target_sid:
        try:
            peer_user = yield call(core.registry.user_of, target_sid)
        except RegistryError as exc:
            log.warning("gateway: cannot look up a peer's userId: %s", exc)
            return
    if not isinstance(peer_user, str) or not peer_user:
        return
    if len(client.peers) >= MAX_PEERS:
        client.peers.pop(next(iter(client.peers)))
    client.peers[target_sid] = peer_user
    yield call(core.server.enter_room, sid, peer_room(peer_user), namespace="/")
    try:
        yield call(core.registry.add_peers, client.user_id, peer_user)
    except RegistryError as exc:
        log.warning("gateway: cannot record exchange peers: %s", exc)


def _notice(action: str, sid: str, user_id: str, app: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"client": sid, "userId": user_id, "target": None}
    if app is not None:
        meta = {"app": app, **meta}
    return wire.parse_msg(action, {"socketId": sid, "userId": user_id}, meta)


def _peer_sockets(core: GatewayCore, user_id: str, sid: str) -> Flow[list[str]]:
    """The online sockets of ``user_id``'s peers (its peers set), ``sid`` left out."""
    try:
        peers = yield call(core.registry.peers_of, user_id)
        found = []
        for peer in peers:
            peer_sid = yield call(core.registry.resolve, peer)
            if peer_sid is not None and peer_sid != sid and peer_sid not in found:
                found.append(peer_sid)
    except RegistryError as exc:
        log.warning("gateway: cannot look up exchange peers: %s", exc)
        return []
    return found


def announce_connect(core: GatewayCore, sid: str, client: Client) -> Flow[None]:
    """Tell the sockets that exchanged with ``client.user_id`` that it is back, at ``sid``:
    its peers set (either side sent), then the room of those that sent to it (a sender whose
    record expired), each socket once."""
    if not core.config.presence:
        return
    message = _notice(wire.CONNECT, sid, client.user_id, client.app)
    told = yield from _peer_sockets(core, client.user_id, sid)
    for peer in told:
        yield call(core.server.emit, wire.RESPONSE_MESSAGE, message, to=peer, namespace="/")
    yield call(core.server.emit, wire.RESPONSE_MESSAGE, message,
               room=peer_room(client.user_id), skip_sid=[sid, *told], namespace="/")


def announce_disconnect(core: GatewayCore, sid: str, client: Client,
                        lives_on: bool) -> Flow[None]:
    """Tell ``sid``'s peers it went away (after the registry forgot it: ``lives_on``, its
    answer, says whether its userId lives on in a newer socket)."""
    if not core.config.presence:
        return
    message = _notice(wire.DISCONNECT, sid, client.user_id, client.app)
    peers = [peer for peer in client.peers if peer != sid]
    for peer in peers:
        yield call(core.server.emit, wire.RESPONSE_MESSAGE, message, to=peer, namespace="/")
    if lives_on:
        return  # the userId lives on in a newer socket: for those that sent to it, nothing left
    yield call(core.server.emit, wire.RESPONSE_MESSAGE, message,
               room=peer_room(client.user_id), skip_sid=[sid, *peers], namespace="/")


def sweep(core: GatewayCore) -> Flow[int]:
    """Find the workers that died without running their sockets' disconnect handlers, take
    their sockets (one live worker does, through the registry) and tell each socket's peers
    it went away; returns how many sockets were taken."""
    if not core.config.presence:
        return 0
    try:
        dead = yield call(core.registry.dead_workers)
        departed = []
        for worker in dead:
            departed += (yield call(core.registry.take_worker, worker))
    except RegistryError as exc:
        # Every SWEEP_EVERY seconds while Redis is away: said once per outage.
        if not core.sweep_failing:
            log.warning("gateway: cannot look for dead workers: %s", exc)
        core.sweep_failing = True
        return 0
    core.sweep_failing = False
    for gone in departed:
        yield from _announce_departed(core, gone.sid, gone.user_id, gone.app)
    if departed:
        log.info("gateway: %d socket%s of %d dead worker%s taken; their peers told",
                 len(departed), "" if len(departed) == 1 else "s",
                 len(dead), "" if len(dead) == 1 else "s")
    return len(departed)


def _announce_departed(core: GatewayCore, sid: str, user_id: str | None,
                       app: str | None) -> Flow[None]:
    """A dead worker's socket leaves the registry; its peers (peers set and the room of its
    senders) hear ``disconnect``, unless its userId already lives on in a newer socket (which
    told them it is back)."""
    try:
        lives_on = yield call(core.registry.unregister, sid)
    except RegistryError as exc:
        log.warning("gateway: cannot unregister a dead worker's socket (it expires): %s", exc)
        return
    if user_id is None or lives_on:
        return
    message = _notice(wire.DISCONNECT, sid, user_id, app)
    told = yield from _peer_sockets(core, user_id, sid)
    for peer in told:
        yield call(core.server.emit, wire.RESPONSE_MESSAGE, message, to=peer, namespace="/")
    yield call(core.server.emit, wire.RESPONSE_MESSAGE, message,
               room=peer_room(user_id), skip_sid=[sid, *told], namespace="/")
