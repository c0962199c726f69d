"""The gateway inside a worker: ids on connect, ``requestMessage`` in, ``responseMessage`` out.

Every client of the default namespace gets a userId and hears ``saveId``; a signed
``requestMessage`` asks for its id again, sends to another client by client id or userId
(wherever it lives: the registry is shared through Redis and the emit crosses workers through
python-socketio's Redis manager), takes over its previous userId after a reconnect, or
broadcasts (to its app's sockets and those bound to no app). Anything refused is answered
with ``deny`` and never dispatched. Peers hear ``connect`` / ``disconnect`` (:mod:`.presence`).

Who may carry a userId
----------------------
userIds are not secrets (every message's ``meta.userId`` shows the sender's), so presenting one
proves nothing. A socket gets a fresh uuid4 unless it proves a claim:

- ``auth.userId`` in the handshake counts only when the handshake is signed for an app
  (``auth`` = ``{app, timestamp, sign, userId}``, checked as any signed request), and a
  ``reconnectAndUpdates`` is a signed request itself. A signature proves the client belongs
  to the app, not that it is that user: such a claim gets a userId no live socket holds (the
  reconnect it is meant for) and never one a live socket holds. The claim is then refused: the
  handshake goes on with a fresh uuid (logged once), ``reconnectAndUpdates`` gets a ``deny``
  and the socket stays connected. The live owner notices nothing.
- The app's own authentication vouches for a userId: a connection middleware sets
  ``ctx.user_id``. That claim wins even over a live socket: the previous owner gets a ``deny``
  (``userId taken over by a newer connection``) and is disconnected (a server-side disconnect:
  clients do not reconnect by themselves, so two tabs do not take it back and forth). A socket
  whose userId the app set cannot switch to another with ``reconnectAndUpdates``.

An unsigned ``auth.userId`` is ignored (logged once), as is anything but a uuid in a signed one.

Engines: :class:`GatewayCore` holds the work as flows (:mod:`.flow`): the registry calls,
emits and room changes in their order around the decisions of :mod:`.rules`. :class:`Gateway`
runs them with plain calls on eventlet; ``async_gateway.AsyncGateway`` awaits them on asyncio.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sioctl.worker.flow import Flow, call

from . import presence, recovered, rules, wire
from .config import GatewayConfig
from .registry import RegistryError
from .rules import CLIENT_ACTIONS, Denied

__all__ = ["CLIENT_ACTIONS", "NAMESPACE", "Client", "Denied", "GatewayCore",
           "UNBOUND_ROOM", "app_room", "broadcast_rooms"]

log = logging.getLogger("sioctl.gateway")

NAMESPACE = "/"
REGISTRY_TTL = 60.0  # registry entries live this long unless renewed
REFRESH_EVERY = REGISTRY_TTL / 3
# How often a worker with sockets looks for dead workers (presence.sweep: 2 round trips).
SWEEP_EVERY = 2.0
# A socket told why it is disconnected gets this long to hear it first.
DISCONNECT_DELAY = 0.05


def app_room(app: str) -> str:
    """The room of the sockets bound to ``app`` (by a signed handshake or request)."""
    return f"gw:app:{app}"


# The sockets of the gateway's namespace bound to no app yet. A broadcast of an app reaches
# its app's room and this one: every socket of the namespace but those of other apps.
UNBOUND_ROOM = "gw:unbound"


def broadcast_rooms(app: str) -> tuple[str, str]:
    """The rooms a broadcast of ``app`` is sent to (disjoint: a socket is in one at most)."""
    return app_room(app), UNBOUND_ROOM


@dataclass
class Client:
    """What this worker knows of one of its sockets."""

    user_id: str
    app: str | None = None
    # The app whose signature the handshake carried (checked by check_handshake).
    signed_app: str | None = None
    # The app's connection middleware set the userId (ctx.user_id): it is not to be changed.
    vouched: bool = False
    # The sockets it sent to (sid -> userId), told when it goes away (see presence).
    peers: dict[str, str] = field(default_factory=dict)


class GatewayCore:
    """The gateway of one worker's server, for either engine: the I/O (registry, emits,
    disconnects) around the decisions of :mod:`.rules`, as flows that an engine runs. The
    registry is a :class:`~.registry.Registry`, or on asyncio anything whose methods return
    awaitables of its answers."""

    def __init__(self, server: Any, config: GatewayConfig, registry: Any) -> None:
        self.server = server
        self.config = config
        self.registry = registry
        self.clients: dict[str, Client] = {}
        self._refreshing = False
        self._refresh_due = 0.0
        self.sweep_failing = False  # presence.sweep's last look failed (said once)
        # The Socket.IO packet rules close a session whose event nests too deeply; a
        # requestMessage is let through so that its sender gets a deny (see request).
        server.events_checking_depth = frozenset({wire.REQUEST_MESSAGE})

    # The engine's background tasks.
    def _refresh_forever(self) -> Any:
        raise NotImplementedError

    def _disconnect_soon(self, sid: str) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------------------ connect

    def handshake(self, auth: Any, sid: str | None) -> Flow[str | None]:
        """Why the handshake must be refused, or None (see ``Gateway.check_handshake``)."""
        reason = rules.handshake_refusal(self.config, auth, wire.now_ms())
        if reason is None and isinstance(auth, dict) and isinstance(auth.get("app"), str):
            try:
                yield from self.replay_check(auth["app"], auth.get("nonce"), auth.get("sign"),
                                             sid)
            except Denied as denied:
                reason = denied.reason
        return reason

    def connect(
        self, sid: str, socket: Any, auth: Any, vouched_user_id: str | None
    ) -> Flow[None]:
        """Give the new socket its userId, register it, and tell it with ``saveId`` (see
        ``Gateway.on_connect``)."""
        auth = auth if isinstance(auth, dict) else {}
        # check_handshake has refused any handshake that names an app without signing for it.
        app = auth.get("app") if isinstance(auth.get("app"), str) else None
        # Back by connection state recovery: its app, and its userId claimed as proven as it was.
        saved = recovered.saved(self.server, sid)
        signed_app = app if saved is None else saved.signed_app
        app = app if saved is None else saved.app
        client = Client(str(uuid.uuid4()), app, signed_app=signed_app)
        self.clients[sid] = client
        try:
            yield call(self.registry.register, sid, client.user_id, app)
        except RegistryError as exc:
            log.warning("gateway: cannot register %s: %s", sid, exc)
        if vouched_user_id is not None and not (isinstance(vouched_user_id, str)
                                                and vouched_user_id):
            log.warning("gateway: ctx.user_id must be a non-empty string, not %s: ignored",
                        type(vouched_user_id).__name__)
            vouched_user_id = None
        if vouched_user_id is None and auth.get("userId") is not None and app is None:
            log.info("gateway: %s presented a userId in an unsigned handshake: "
                     "it gets a fresh one", sid)
        claim = rules.connect_claim(auth, app, vouched_user_id)
        if saved is not None and vouched_user_id is None:
            claim = (saved.user_id, saved.vouched)
            vouched_user_id = saved.user_id if saved.vouched else None
        claimed = False
        if claim is not None:
            yield from self._claim_on_connect(sid, client, *claim)
            client.vouched = vouched_user_id is not None and client.user_id == vouched_user_id
            claimed = client.user_id == claim[0]
        yield call(self.server.enter_room, sid,
                   UNBOUND_ROOM if app is None else app_room(app), namespace=NAMESPACE)
        recovered.remember(self.server, sid, client)
        if saved is None or not claimed:
            # (A recovered socket that kept its userId knows its ids already.)
            yield call(socket.emit, wire.RESPONSE_MESSAGE, self._save_id(sid))
        if claimed:
            # A proven userId is back: its peers hear so (a fresh uuid has no one).
            yield from presence.announce_connect(self, sid, client)
        self._start_refreshing()

    def _claim_on_connect(
        self, sid: str, client: Client, user_id: str, take_over: bool
    ) -> Flow[None]:
        """Move a proven claim's userId onto the new socket, or leave it its fresh one."""
        try:
            result = yield call(self.registry.rebind, user_id, sid, take_over)
        except RegistryError as exc:
            log.warning("gateway: cannot give %s the userId it claimed: %s", sid, exc)
            return
        if not result.ok:
            log.info("gateway: %s claimed a userId %s: it gets a fresh one", sid,
                     "held by a live socket" if result.holder else "but is not registered")
            return
        client.user_id = user_id
        if result.holder is not None:
            yield from self._evict(result.holder, sid)

    def _evict(self, holder: str, by: str) -> Flow[None]:
        """Tell the socket that lost its userId to ``by``, and disconnect it (on any worker)."""
        log.info("gateway: %s took over the userId of %s, which is disconnected", by, holder)
        yield from self._send(holder, wire.parse_deny_msg(
            {"reason": "userId taken over by a newer connection"},
            {"client": holder, "target": holder}))
        self.server.start_background_task(self._disconnect_soon, holder)

    def disconnect(self, sid: str) -> Flow[None]:
        """Forget ``sid`` here and in the registry, then tell its peers it went away."""
        client = self.clients.pop(sid, None)
        try:
            lives_on = yield call(self.registry.unregister, sid)
        except RegistryError as exc:
            log.warning("gateway: cannot unregister %s (it expires by itself): %s", sid, exc)
            lives_on = False
        if client is not None:
            yield from presence.announce_disconnect(self, sid, client, lives_on)

    def _save_id(self, sid: str) -> dict[str, Any]:
        client = self.clients[sid]
        return wire.parse_msg(wire.SAVE_ID, {"socketId": sid, "userId": client.user_id},
                              _meta(client.app, sid, client.user_id, sid))

    def _start_refreshing(self) -> None:
        if not self._refreshing:
            self._refreshing = True
            self._refresh_due = time.monotonic() + REFRESH_EVERY
            self.server.start_background_task(self._refresh_forever)

    def ticking(self) -> Flow[None]:
        """The background task's beat: presence.sweep, and refreshing every REFRESH_EVERY."""
        yield from presence.sweep(self)
        if time.monotonic() >= self._refresh_due:
            self._refresh_due = time.monotonic() + REFRESH_EVERY
            yield from self.refreshing()

    def refreshing(self) -> Flow[None]:
        """Renew the registry entries of this worker's sockets, and write again those the
        registry has lost (a Redis restarted without its data) while the socket is still here.
        A userId that another socket has meanwhile taken stays with that socket."""
        sids = list(self.clients)
        if not sids:
            return
        try:
            missing = yield call(self.registry.refresh, sids)
            restored = 0
            for sid in missing:
                client = self.clients.get(sid)
                if client is None:
                    continue
                if (yield call(self.registry.resolve, client.user_id)) not in (None, sid):
                    continue
                yield call(self.registry.register, sid, client.user_id, client.app)
                restored += 1
        except RegistryError as exc:
            log.warning("gateway: cannot refresh %d registry entries: %s", len(sids), exc)
            return
        if restored:
            log.info("gateway: wrote %d registry entr%s again (the registry had lost them)",
                     restored, "y" if restored == 1 else "ies")

    # ------------------------------------------------------------------------ requestMessage

    def request(self, sid: str, args: list[Any]) -> Flow[Any]:
        """Handle one ``requestMessage``; returns the acknowledgement for the sender."""
        try:
            return (yield from self._dispatch(sid, args))
        except Denied as denied:
            return (yield from self._deny(sid, denied))

    def _dispatch(self, sid: str, args: list[Any]) -> Flow[Any]:
        client = self.clients.get(sid)
        if client is None:
            raise Denied("not connected", disconnect=False)
        envelope = rules.check_request(self.config, args, wire.now_ms())
        meta, data = envelope["meta"], envelope["data"]
        app = meta["app"]
        yield from self.replay_check(app, meta.get("nonce"), meta["sign"], sid)
        action = data["action"]
        rules.check_rights(self.config, app, action, client.signed_app)
        yield from self._join_app(sid, client, app)
        if action == wire.REQUEST_ID:
            message = self._save_id(sid)
            yield from self._send(sid, message)
            return message
        if action == wire.SEND_TO_OTHERS:
            return (yield from self._send_to_others(sid, client, app, meta["target"],
                                                    data.get("payload")))
        if action == wire.RE_CONNECT_AND_UPDATES:
            return (yield from self._reconnect(sid, client, app, meta, data.get("payload")))
        return (yield from self._broadcast(sid, client, app, data.get("payload")))

    def replay_check(self, app: str, nonce: Any, sign: Any, owner: str | None) -> Flow[None]:
        """Raise Denied when a validly signed request of ``app`` is a replay (see
        :func:`.rules.replay_claim`; ``owner`` is the socket, None for an HTTP call). What was
        seen lives in the shared registry, so a replay to another worker or node is caught
        too."""
        claim = rules.replay_claim(self.config, app, nonce, sign, owner)
        if claim is None:
            return
        try:
            if claim.what == "nonce":
                fresh = yield call(self.registry.claim_nonce, app, claim.value, claim.ttl)
            else:
                fresh = yield call(self.registry.claim_signature, app, claim.value, claim.owner,
                                   claim.ttl)
        except RegistryError as exc:
            log.warning("gateway: cannot check for a replay: %s", exc)
            raise Denied("temporarily unavailable, try again", disconnect=False) from None
        if not fresh:
            raise Denied(f"replayed {claim.what}")

    def _join_app(self, sid: str, client: Client, app: str) -> Flow[None]:
        if client.app == app:
            return
        yield call(self.server.leave_room, sid,
                   UNBOUND_ROOM if client.app is None else app_room(client.app),
                   namespace=NAMESPACE)
        client.app = app
        recovered.remember(self.server, sid, client)
        yield call(self.server.enter_room, sid, app_room(app), namespace=NAMESPACE)
        try:
            yield call(self.registry.set_app, sid, app)
        except RegistryError as exc:
            log.warning("gateway: cannot record the app of %s: %s", sid, exc)

    def _send_to_others(
        self, sid: str, client: Client, app: str, target: str, payload: Any
    ) -> Flow[dict[str, Any]]:
        message = wire.parse_exchange_msg(payload, _meta(app, sid, client.user_id, target))
        delivered_to = yield from self.delivery(target, message)
        if delivered_to is None:
            raise Denied(f"target {target!r} is not online", disconnect=False)
        yield from presence.remember_peer(self, sid, client, target, delivered_to)
        return {"status": 200, "success": True, "target": target}

    def delivery(self, target: str, message: dict[str, Any]) -> Flow[str | None]:
        """Send ``message`` to the client id or userId ``target`` on whatever worker holds it;
        returns its client id, or None when it is not online. Raises Denied if the registry is
        unreachable."""
        try:
            target_sid = yield call(self.registry.resolve, target)
        except RegistryError as exc:
            log.warning("gateway: cannot look up a target: %s", exc)
            raise Denied("temporarily unavailable, try again", disconnect=False) from None
        if target_sid is None:
            return None
        yield from self._send(target_sid, message)
        return target_sid

    def _reconnect(
        self, sid: str, client: Client, app: str, meta: dict[str, Any], payload: Any
    ) -> Flow[dict[str, Any]]:
        previous = meta.get("userId")
        if previous is None and isinstance(payload, dict):
            previous = payload.get("userId")
        if not isinstance(previous, str) or not previous:
            raise Denied("reconnectAndUpdates needs the previous userId", ["meta.userId"],
                         disconnect=False)
        if client.vouched and previous != client.user_id:
            raise Denied("the app set this socket's userId", disconnect=False)
        try:
            result = yield call(self.registry.rebind, previous, sid)
            if not result.ok and result.holder is None:
                # This socket's own entry is gone (Redis lost it): record it again, then retry.
                yield call(self.registry.register, sid, client.user_id, client.app)
                result = yield call(self.registry.rebind, previous, sid)
        except RegistryError as exc:
            log.warning("gateway: cannot rebind a userId: %s", exc)
            raise Denied("temporarily unavailable, try again", disconnect=False) from None
        if not result.ok:
            # A signature proves the app, not the user: a live owner keeps its userId.
            raise Denied("the userId is held by another live connection", disconnect=False)
        client.user_id = previous
        recovered.remember(self.server, sid, client)
        message = wire.parse_msg(wire.RE_CONNECT_UPDATED, {"socketId": sid, "userId": previous},
                                 _meta(app, sid, previous, sid))
        yield from self._send(sid, message)
        yield from presence.announce_connect(self, sid, client)
        return message

    def _broadcast(
        self, sid: str, client: Client, app: str, payload: Any
    ) -> Flow[dict[str, Any]]:
        # No single target: the key is there (every reply carries it), its value null.
        message = wire.parse_broadcast_msg(payload, _meta(app, sid, client.user_id, None))
        # Two emits rather than a list of rooms: every client manager takes one room.
        for room in broadcast_rooms(app):
            yield call(self.server.emit, wire.RESPONSE_MESSAGE, message, room=room,
                       skip_sid=sid, namespace=NAMESPACE)
        return {"status": 200, "success": True}

    def _send(self, sid: str, message: dict[str, Any]) -> Flow[None]:
        yield call(self.server.emit, wire.RESPONSE_MESSAGE, message, to=sid,
                   namespace=NAMESPACE)

    def _deny(self, sid: str, denied: Denied) -> Flow[dict[str, Any]]:
        client = self.clients.get(sid)
        payload: dict[str, Any] = {"reason": denied.reason}
        if denied.fields:
            payload["fields"] = denied.fields
        message = wire.parse_deny_msg(payload, _meta(client.app if client else None, sid,
                                                     client.user_id if client else None, sid))
        log.info("gateway: denied a request from %s: %s%s", sid, denied.reason,
                 f" ({', '.join(denied.fields)})" if denied.fields else "")
        yield from self._send(sid, message)
        if denied.disconnect and self.config.disconnect_on_deny:
            # After the acknowledgement, which python-socketio sends once we return.
            self.server.start_background_task(self._disconnect_soon, sid)
        return message


def _meta(app: str | None, sid: str, user_id: str | None, target: str | None) -> dict[str, Any]:
    """The meta of a reply, in the seed's unified return format: every reply carries
    ``target`` (the socket a reply is addressed to; null for a broadcast)."""
    meta: dict[str, Any] = {"client": sid, "userId": user_id, "target": target}
    if app is not None:
        meta = {"app": app, **meta}
    return meta
