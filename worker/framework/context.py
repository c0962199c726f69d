"""``ctx``: what middleware and controllers get for a connection or a packet.

:class:`Context` and :class:`SocketCore` are engine-free: how a ctx is built and copied per
packet, what an ack keeps, which emits are held back during the handshake and what each socket
operation asks of the server. :class:`SocketHandle` (here) and ``aio.AsyncSocketHandle`` are the
shells that make those calls on a ``socketio.Server`` or await them on a ``socketio.AsyncServer``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from .core import AppCore


def _payload(args: tuple[Any, ...]) -> Any:
    """python-socketio's emit takes one argument as is and several as a tuple."""
    return args[0] if len(args) == 1 else args


class SocketCore:
    """One client's socket in one namespace, as egg-socket.io's ``ctx.socket``: its id, its
    server, and the emits held back while the connection middleware is still deciding (the
    client would drop them before it has been told it is connected)."""

    def __init__(self, server: Any, sid: str, namespace: str) -> None:
        self.server = server
        self.id = sid
        self.namespace = namespace
        self._held: list[tuple[str, tuple[Any, ...]]] | None = []

    def hold(self, event: str, args: tuple[Any, ...]) -> bool:
        """Keep ``event`` for :meth:`take_held` while the handshake is undecided; False once
        the socket is connected (the emit goes out at once)."""
        if self._held is None:
            return False
        self._held.append((event, args))
        return True

    def take_held(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The held emits, oldest first; from now on nothing is held."""
        held, self._held = self._held or [], None
        return held

    def emit_to_self(self, event: str, args: tuple[Any, ...]) -> dict[str, Any]:
        """The server ``emit`` keyword arguments that send ``event`` to this client."""
        return {"event": event, "data": _payload(args), "to": self.id,
                "namespace": self.namespace}

    def emit_to_room(self, room: str | None, event: str, args: tuple[Any, ...]) -> dict[str, Any]:
        """The server ``emit`` keyword arguments that send ``event`` to ``room`` (everyone in
        this namespace when None) except this client."""
        return {"event": event, "data": _payload(args), "to": room, "namespace": self.namespace,
                "skip_sid": self.id}

    @property
    def rooms(self) -> list[str]:
        """The rooms this socket is in (its own id included, as in socket.io)."""
        return list(self.server.rooms(self.id, namespace=self.namespace))


class RoomEmitter:
    """``socket.to(room)`` and ``socket.broadcast``: emits that skip the sending socket."""

    def __init__(self, socket: SocketHandle, room: str | None) -> None:
        self._socket = socket
        self._room = room

    def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to the room (or to everyone) in this namespace, except this socket."""
        self._socket.server.emit(**self._socket.emit_to_room(self._room, event, args))

    def to(self, room: str) -> RoomEmitter:
        return RoomEmitter(self._socket, room)


class SocketHandle(SocketCore):
    """The sync shell of ``ctx.socket``, on a ``socketio.Server``: each call is made at once."""

    def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to this client."""
        if not self.hold(event, args):
            self.server.emit(**self.emit_to_self(event, args))

    def release(self) -> None:
        """Send what was held back during the handshake; later emits go out at once."""
        for event, args in self.take_held():
            self.emit(event, *args)

    def join(self, room: str) -> None:
        self.server.enter_room(self.id, room, namespace=self.namespace)

    def leave(self, room: str) -> None:
        self.server.leave_room(self.id, room, namespace=self.namespace)

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
        app: AppCore,
        socket: Any,
        request: dict[str, Any],
        auth: Any,
        session: dict[str, Any],
    ) -> None:
        self.app = app
        # A SocketHandle (sync shell) or an AsyncSocketHandle (async shell).
        self.socket = socket
        self.namespace: str = socket.namespace
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

    @property
    def recovered(self) -> bool:
        """Whether this socket came back with its session (connection state recovery: same
        id, rooms and data, missed events replayed) rather than as a new one."""
        manager = getattr(getattr(self.app, "sio", None), "manager", None)
        recovered = getattr(manager, "recovered", None)
        return bool(callable(recovered) and recovered(self.socket.id, self.namespace))

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
