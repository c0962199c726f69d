"""One namespace's decisions, engine-free: the half of the framework core that
``NamespaceCore`` mixes into python-socketio's ``Namespace`` (eventlet shell,
``application.py``) or ``AsyncNamespace`` (asyncio shell, ``aio.py``).

Which plugin refuses a handshake, what a refused connection is told, how a ctx is built, which
handler an event gets, what a packet answers, what is logged, and the steps of the connect and
disconnect work in their order (:class:`Step` lists the shell runs, calling or awaiting).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from socketio.exceptions import ConnectionRefusedError

from .config import NamespaceConfig
from .context import Context
from .onion import NextNotCalled, refusal_message
from .plugins import Plugin
from .routing import Handler, handler_for, plugin_routes

if TYPE_CHECKING:
    from .core import AppCore

log = logging.getLogger("sioctl.app")


@dataclass(frozen=True)
class Step:
    """One call a shell makes, in the order the core lists them; ``call()`` may return an
    awaitable (the async shell awaits it). A ``guarded`` step's exception is logged as
    "<what> failed" and the next step runs; any other step's exception propagates."""

    what: str
    call: Callable[[], Any]
    guarded: bool = False

    def failed(self, exc: Exception) -> None:
        """The step raised ``exc``: logged when the step is guarded, raised again if not."""
        if not self.guarded:
            raise exc
        log.error("%s failed", self.what, exc_info=exc)


class ConnectionState:
    """A socket that reached its connection middleware: its ctx, and whether the middleware
    accepted it or why it refused (the shells add the events or futures they wait on)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.accepted = False
        self.refusal: BaseException | None = None


class NamespaceCore:
    """The decisions of one namespace (see the module docstring); mixed in before
    python-socketio's ``Namespace`` / ``AsyncNamespace`` by the shells."""

    namespace: str

    def __init__(self, app: AppCore, name: str, settings: NamespaceConfig) -> None:
        self.app = app
        self.namespace = name
        self.connection_layers = app.middleware_layers(settings.connection_middleware, name,
                                                       "connection_middleware")
        self.packet_layers = app.middleware_layers(settings.packet_middleware, name,
                                                   "packet_middleware")
        self.connections: dict[str, Any] = {}
        self.plugins = [plugin for plugin in app.plugins if plugin.namespace == name]
        # Events the plugins serve where the app routes none (the first plugin wins).
        self.plugin_routes: dict[str, Handler] = plugin_routes(self.plugins)

    def dispatch(self, event: str, args: tuple[Any, ...]) -> tuple[Callable[..., Any],
                                                                   tuple[Any, ...]]:
        """The shell's handler of what python-socketio triggers, and its arguments:
        ``on_connect(sid, environ, auth)``, ``on_disconnect(sid, reason)`` (no reason from
        older callers) or ``on_packet(event, sid, args)``."""
        if event == "connect":
            return self.on_connect, args
        if event == "disconnect":
            return self.on_disconnect, (args[0], args[1] if len(args) > 1 else None)
        return self.on_packet, (event, args[0], args[1:])

    # The shell's handlers, plain on eventlet, coroutines on asyncio.
    on_connect: Callable[..., Any]
    on_disconnect: Callable[..., Any]
    on_packet: Callable[..., Any]

    @property
    def routes(self) -> dict[str, Handler]:
        """The app's own routes on this namespace (``app/router.py``)."""
        return self.app.io.routes_of(self.namespace)

    # ------------------------------------------------------------------------- connect

    def check_refusal(self, plugin: Plugin, reason: str | None, sid: str) -> None:
        """``plugin.refuse`` said ``reason``: raises ConnectionRefusedError (sent to the client
        as ``connect_error``) unless it is None. The shell asks each plugin in order and stops
        at the first refusal."""
        if reason is not None:
            log.info("%s %s refused by the %s: %s", self.namespace, sid, plugin.name, reason)
            raise ConnectionRefusedError(reason)

    def new_connection(self, state: ConnectionState) -> None:
        """Remember ``state`` while its connection middleware decides (and after)."""
        self.connections[state.ctx.socket.id] = state

    def connection_chain(self, sid: str) -> list[Any]:
        """The connection middleware to run for socket ``sid``: none for a socket that
        recovered its session (connection state recovery) when
        ``io.init.connection_state_recovery.skip_middlewares`` (socket.io's default): it ran
        them when it first connected."""
        recovery = self.app.config.init.get("connection_state_recovery") or {}
        recovered = getattr(self.app.sio.manager, "recovered", None)
        if recovery.get("skip_middlewares", True) and callable(recovered) and \
                recovered(sid, self.namespace):
            return []
        return list(self.connection_layers)

    def new_context(self, socket: Any, environ: dict[str, Any], auth: Any,
                    session: dict[str, Any]) -> Context:
        """The connection's ctx, on the shell's socket handle."""
        return Context(self.app, socket, environ, auth, session)

    def chain_ended(self, state: ConnectionState, exc: BaseException) -> None:
        """The connection chain raised: a refusal before it accepted, an after-half failing
        at disconnect after (logged)."""
        if not state.accepted:
            state.refusal = exc
        else:
            log.error("connection middleware of %s failed after disconnect", self.namespace,
                      exc_info=exc)

    def check_accepted(self, state: ConnectionState) -> None:
        """The connection chain has decided: raises ConnectionRefusedError with the message of
        :func:`.onion.refusal_message` (and forgets the socket) unless it accepted."""
        if state.accepted:
            return
        sid = state.ctx.socket.id
        self.connections.pop(sid, None)
        message = refusal_message(state.refusal)
        log.info("%s %s refused: %s", self.namespace, sid, message)
        raise ConnectionRefusedError(message)

    def connected_steps(self, state: ConnectionState) -> list[Step]:
        """What follows an accepted connection: each plugin's ``connected(ctx)`` in order,
        then the Redis-back hooks registered (at the first connection: the worker installs
        its manager after the app loads). The held emits go out after the CONNECT reply."""
        ctx = state.ctx
        steps = [Step(f"{plugin.name} connected", _bind(plugin.connected, ctx))
                 for plugin in self.plugins]
        steps.append(Step("watch redis back", self.app.watch_redis_back))
        return steps

    # ---------------------------------------------------------------------- disconnect

    def disconnect_steps(
        self, sid: str, reason: Any
    ) -> tuple[Any, list[Step]] | None:
        """Forget ``sid`` and list what its disconnect runs, in order: the app's
        ``disconnecting`` and ``disconnect`` routes (a failure logged), each plugin's
        ``disconnected(sid)``, the release of its socket id. None for a socket this namespace
        never accepted; else the shell's own ConnectionState, whose connection chain's
        after-halves the shell lets run after the steps."""
        state = self.connections.pop(sid, None)
        if state is None:
            return None
        ctx = state.ctx.for_packet("disconnect", (reason,))
        steps = [Step(f"{event} handler of {self.namespace}", _bind(handler, ctx), guarded=True)
                 for event in ("disconnecting", "disconnect")
                 if (handler := self.routes.get(event)) is not None]
        steps += [Step(f"{plugin.name} disconnected", _bind(plugin.disconnected, sid))
                  for plugin in self.plugins]
        steps.append(Step("id release", lambda: self.app.sio.claims.release(self.namespace,
                                                                            sid)))
        return state, steps

    # ------------------------------------------------------------------------- packets

    def packet_context(self, sid: str, event: str, args: tuple[Any, ...]) -> Context | None:
        """The ctx of one packet from ``sid``; None when ``sid`` is not connected here (the
        shell answers "not handled")."""
        state = self.connections.get(sid)
        return None if state is None else state.ctx.for_packet(event, args)

    def handler_for(self, event: str) -> Handler | None:
        """The handler of ``event`` here (see :func:`.routing.handler_for`)."""
        return handler_for(event, self.routes, self.plugin_routes)

    def answer(self, ctx: Context, handler: Handler | None, result: list[Any],
               not_handled: Any) -> Any:
        """What python-socketio sends back for a packet the chain ran through: nothing
        (``not_handled``) when no handler served it, else ``ctx.ack(...)``'s values when the
        handler acked, else what the handler returned."""
        if handler is None:
            return not_handled
        if ctx.acked:
            return ctx.ack_values
        return result[0] if result else None

    def dropped(self, ctx: Context, exc: NextNotCalled) -> None:
        """A packet middleware skipped ``next()``: the packet gets no answer (logged)."""
        log.debug("%s %s: packet %r dropped: %s", self.namespace, ctx.socket.id, ctx.event, exc)

    def failed(self, ctx: Context, exc: Exception) -> tuple[dict[str, Any], list[Step]]:
        """A packet's middleware or handler raised: logged once here; returns the payload of
        the ``error`` event the shell sends the client first, then the steps of the app's
        ``error`` route (with ``ctx.error`` set)."""
        log.error("%s %s: event %r failed: %s: %s", self.namespace, ctx.socket.id, ctx.event,
                  type(exc).__name__, exc, exc_info=exc)
        payload = {"message": str(exc) or type(exc).__name__, "event": ctx.event}
        handler = self.routes.get("error")
        if handler is None:
            return payload, []
        ctx.error = exc
        return payload, [Step(f"error handler of {self.namespace}", _bind(handler, ctx),
                              guarded=True)]


def _bind(function: Callable[[Any], Any], argument: Any) -> Callable[[], Any]:
    return lambda: function(argument)
