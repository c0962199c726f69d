"""``ctx``: what middleware and controllers get for a connection or a packet."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import socketio

if TYPE_CHECKING:
    from .application import Application


def _payload(args: tuple[Any, ...]) -> Any:
    """python-socketio's emit takes one argument as is and several as a tuple."""
    return args[0] if len(args) == 1 else args


class RoomEmitter:
    """``socket.to(room)`` and ``socket.broadcast``: emits that skip the sending socket."""

    def __init__(self, socket: SocketHandle, room: str | None) -> None:
        self._socket = socket
        self._room = room

    def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to the room (or to everyone) in this namespace, except this socket."""
        s = self._socket
        s.server.emit(event, _payload(args), to=self._room, namespace=s.namespace, skip_sid=s.id)

    def to(self, room: str) -> RoomEmitter:
        return RoomEmitter(self._socket, room)


class SocketHandle:
    """One client's socket in one namespace, as egg-socket.io's ``ctx.socket``.

    Emits made while the connection middleware is still deciding are held back and sent once
    the client has been told it is connected (before that, the client would drop them).
    """

    def __init__(self, server: socketio.Server, sid: str, namespace: str) -> None:
        self.server = server
        self.id = sid
        self.namespace = namespace
        self._held: list[tuple[str, tuple[Any, ...]]] | None = []

    def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to this client."""
        if self._held is not None:
            self._held.append((event, args))
            return
        self.server.emit(event, _payload(args), to=self.id, namespace=self.namespace)

    def release(self) -> None:
        """Send what was held back during the handshake; later emits go out at once."""
        held, self._held = self._held or [], None
        for event, args in held:
            self.emit(event, *args)

    def join(self, room: str) -> None:
        self.server.enter_room(self.id, room, namespace=self.namespace)

    def leave(self, room: str) -> None:
        self.server.leave_room(self.id, room, namespace=self.namespace)

    @property
    def rooms(self) -> list[str]:
        """The rooms this socket is in (its own id included, as in socket.io)."""
        return list(self.server.rooms(self.id, namespace=self.namespace))

    def to(self, room: str) -> RoomEmitter:
        return RoomEmitter(self, room)

    @property
    def broadcast(self) -> RoomEmitter:
        return RoomEmitter(self, None)

    def disconnect(self) -> None:
        self.server.disconnect(self.id, namespace=self.namespace)


class Context:
    """The connection's context; each packet gets a copy with its own event, args and ack."""

    def __init__(
        self,
        app: Application,
        socket: SocketHandle,
        request: dict[str, Any],
        auth: Any,
        session: dict[str, Any],
    ) -> None:
        self.app = app
        self.socket = socket
        self.namespace = socket.namespace
        self.request = request
        self.auth = auth
        self.session = session
        self.query = {k: v[0] for k, v in parse_qs(request.get("QUERY_STRING", "")).items()}
        self.event: str | None = None
        self.args: list[Any] = []
        self.packet: list[Any] = []
        self.error: BaseException | None = None
        self.acked = False
        self.ack_values: tuple[Any, ...] = ()
        # The gateway's userId for this socket, when the app's connection middleware has
        # authenticated the user and sets it (before next()); None leaves it to the gateway.
        self.user_id: str | None = None

    def for_packet(self, event: str, args: tuple[Any, ...]) -> Context:
        """A context for one incoming packet, sharing the connection's socket and session."""
        ctx = Context.__new__(Context)
        ctx.__dict__.update(self.__dict__)
        ctx.event = event
        ctx.args = list(args)
        ctx.packet = [event, *args]
        ctx.acked = False
        ctx.ack_values = ()
        return ctx

    def ack(self, *values: Any) -> None:
        """Answer the client's acknowledgement with ``values`` (the first answer counts)."""
        if not self.acked:
            self.acked = True
            self.ack_values = values
