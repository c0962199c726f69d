"""Engine.IO v4 / Socket.IO v5 as the specifications say, on top of python-engineio/socketio.

The worker installs these on the app's servers when it loads it: python-engineio and
python-socketio keep doing the work, and the small deviations from the specifications
(listed in docs/design.md, "Protocol conformance") are corrected around them. Nothing here
imports eventlet, so the modules stay importable anywhere.

Each server gets its final class in one step (:func:`install_engine`, :func:`install`): the
mixins below put in front of the server's own class (python-engineio's or python-socketio's,
or the user's subclass of them), in the order written here, which is the order their methods
run in. The instance keeps its state; only its class changes, once.
"""

from __future__ import annotations

from typing import Any

import engineio
import socketio

from sioctl.cluster.settings import default

from . import (
    async_eio3,
    async_engineio,
    async_socketio,
    eio3_handshake,
    engineio_server,
    ping_interval,
    recovery,
    sio_v4,
    socketio_rules,
)

# The reference server's default connectTimeout (the --connect-timeout default): a session that
# has not sent its first CONNECT by then is closed.
DEFAULT_CONNECT_TIMEOUT: float = default("connect_timeout")

# An engineio.Server's mixins, first to last in its method resolution order:
ENGINE_MIXINS: tuple[type, ...] = (
    # handle_request: an EIO=3 handshake is refused or let in (its query rewritten to EIO=4)
    # before any other rule reads the query; _handle_connect: such a handshake opens a v3
    # session.
    eio3_handshake.Eio3DoorMixin,
    # handle_request: the request-level 400s and the 413; sockets (every session stored is
    # made a ConformantSocket); _service_task; _ok.
    engineio_server.ConformantEngineMixin,
    # create_queue: the OPEN packet advertises the exact ping interval.
    ping_interval.ExactPingIntervalMixin,
)

# A socketio.Server's mixins, first to last in its method resolution order:
SERVER_MIXINS: tuple[type, ...] = (
    # The packets of Socket.IO v2 clients rewritten to v5 before the rules check them, and the
    # server's v5 packets rewritten to v4 on their way out; records the implicit CONNECT in the
    # rules' _sioctl_state.
    sio_v4.SocketIOv4Mixin,
    # Packet validation, the CONNECT-first rule, the connect timeout, CONNECT_ERROR's shape.
    socketio_rules.ConformantServerMixin,
    # Connection state recovery (inert unless the manager has it on): a CONNECT of a served
    # namespace may restore a session; the CONNECT answer carries the private id.
    recovery.RecoveryServerMixin,
)


# The same rules on python-engineio's / python-socketio's asyncio servers (the async shells over
# the same core; the asyncio worker installs them), in the same order.
ASYNC_ENGINE_MIXINS: tuple[type, ...] = (
    # _sioctl_screen (of the translated request): EIO=3 handshakes refused or let in as EIO=4;
    # _handle_connect: such a handshake opens a v3 session.
    async_eio3.AsyncEio3DoorMixin,
    # handle_request (the request translated once, then screened), _make_response (413),
    # sockets, _service_task, _ok; create_queue: a session_queue.SessionQueue, whose OPEN
    # packet advertises the exact ping interval.
    async_engineio.AsyncConformantEngineMixin,
)
ASYNC_SERVER_MIXINS: tuple[type, ...] = (
    async_eio3.AsyncSocketIOv4Mixin,
    async_socketio.AsyncConformantServerMixin,
    recovery.AsyncRecoveryServerMixin,
)


def install(
    server: socketio.Server | socketio.AsyncServer,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, allow_eio3: bool = False,
) -> None:
    """Make ``server`` (a socketio.Server or AsyncServer, possibly the user's subclass) and
    its engine.io server follow the specifications; sessions created from now on are covered.
    With ``allow_eio3``, Socket.IO v2 clients (Engine.IO 3) are served too; without it their
    handshake gets a 400 saying how to allow them. Installing again only changes the
    settings. An AsyncServer gets the async shells."""
    install_engine(server.eio, allow_eio3)
    mixins = ASYNC_SERVER_MIXINS if isinstance(server, socketio.AsyncServer) else SERVER_MIXINS
    if not isinstance(server, mixins[1]):  # the rules' mixin, second in either tuple
        _extend_class(server, mixins, "SocketIO")
    socketio_rules.adopt(server, connect_timeout)


def install_engine(eio: engineio.Server | engineio.AsyncServer, allow_eio3: bool = False) -> None:
    """Make ``eio`` (an engineio.Server or AsyncServer, bare or a socket.io server's) follow
    the Engine.IO specification; sessions created from now on are covered (open ones too,
    except for the rules of a session's creation). Installing again only changes the
    settings."""
    if isinstance(eio, engineio.AsyncServer):
        if not isinstance(eio, async_engineio.AsyncConformantEngineMixin):
            _extend_class(eio, ASYNC_ENGINE_MIXINS, "EngineIO")
        async_engineio.adopt(eio)
    else:
        if not isinstance(eio, engineio_server.ConformantEngineMixin):
            _extend_class(eio, ENGINE_MIXINS, "EngineIO")
        engineio_server.adopt(eio)
    eio3_handshake.adopt(eio, allow_eio3)


def _extend_class(obj: Any, mixins: tuple[type, ...], kind: str) -> None:
    """Give ``obj`` the class ``mixins + (its class,)``: the one class change of a server."""
    base = type(obj)
    obj.__class__ = type(f"Sioctl{kind}{base.__name__}", (*mixins, base), {})


def socketio_figures(server: Any) -> dict[str, int] | None:
    """``{"events": N, "emits": M}``: the Socket.IO events ``server`` received and its emit()
    calls since it was set up (None for a server without the rules: Engine.IO only)."""
    state = getattr(server, "_sioctl_state", None)
    if state is None:
        return None
    return {"events": state.events_received, "emits": state.emits}
