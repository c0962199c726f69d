"""The seed's ``connect`` and ``disconnect`` actions: telling a client's exchange peers that it
went away, and that its identity is back.

Who hears what (the seed's constants table only names them, "连接成功" and "断开连接"):

- ``disconnect`` ``{socketId, userId}`` when a socket goes away, to its *peers*: the sockets it
  sent a ``sendToOthers`` to, and those that sent it one (by its userId or socket id). A socket
  whose userId lives on in another socket (taken over by a newer connection) tells only the
  sockets it sent to: for the others the userId is still there.
- ``connect`` ``{socketId, userId}`` when a socket's identity is saved for a userId it proves
  (``reconnectAndUpdates`` answered ``reconnectUpdated``, or a signed handshake's or the app's
  claim on connect), to the sockets that had sent to that userId: it is reachable again, at a
  new socket id. A fresh uuid has no peers, so a plain connect sends nothing.

How peers are found across workers without new registry keys: a sender joins the room
``gw:peers:<target's userId>`` (rooms cross workers through the Redis manager), and remembers
the targets it sent to in its worker (``Client.peers``, at most ``MAX_PEERS``). Both notices
carry ``meta.target`` null (one emit reaches several peers). Peers on a worker that died hear
nothing: its sockets vanish from the registry when their entries expire.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import wire
from .flow import Flow, call
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
    if target_sid in client.peers or target_sid == sid:
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


def _notice(action: str, sid: str, client: Client) -> dict[str, Any]:
    meta: dict[str, Any] = {"client": sid, "userId": client.user_id, "target": None}
    if client.app is not None:
        meta = {"app": client.app, **meta}
    return wire.parse_msg(action, {"socketId": sid, "userId": client.user_id}, meta)


def announce_connect(core: GatewayCore, sid: str, client: Client) -> Flow[None]:
    """Tell the sockets that sent to ``client.user_id`` that it is back, at ``sid``."""
    yield call(core.server.emit, wire.RESPONSE_MESSAGE, _notice(wire.CONNECT, sid, client),
               room=peer_room(client.user_id), skip_sid=sid, namespace="/")


def announce_disconnect(core: GatewayCore, sid: str, client: Client) -> Flow[None]:
    """Tell ``sid``'s peers it went away (before its registry entry is removed)."""
    message = _notice(wire.DISCONNECT, sid, client)
    peers = [peer for peer in client.peers if peer != sid]
    for peer in peers:
        yield call(core.server.emit, wire.RESPONSE_MESSAGE, message, to=peer, namespace="/")
    try:
        holder = yield call(core.registry.resolve, client.user_id)
    except RegistryError as exc:
        log.warning("gateway: cannot check a userId at disconnect: %s", exc)
        holder = None
    if holder not in (None, sid):
        return  # the userId lives on in a newer socket
    yield call(core.server.emit, wire.RESPONSE_MESSAGE, message,
               room=peer_room(client.user_id), skip_sid=[sid, *peers], namespace="/")
