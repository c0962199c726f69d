"""The words of the library contract (``library_contract.py``): the kinds of reliance, the
libraries, the :class:`Hook` entry, and the names of the library classes and sioctl files the
entries point at, shared by the contract's sync and asyncio parts."""

from __future__ import annotations

from dataclasses import dataclass

# Kinds of reliance.
OVERRIDE = "override"  # a sioctl class (or a mixin put on the library's class) redefines it
CALL = "call"  # sioctl calls it
COPY = "copy"  # sioctl re-implements its body: track upstream changes to it by hand
ATTRIBUTE = "attribute"  # sioctl reads or writes it (undocumented)
LAYOUT = "layout"  # sioctl relies on the shape of what it holds (checked on real objects)
PATCH = "patch"  # sioctl replaces it on the library's class or on a live instance
KINDS = (OVERRIDE, CALL, COPY, ATTRIBUTE, LAYOUT, PATCH)

# Distribution names of the libraries, by top-level module.
LIBRARIES = {
    "engineio": "python-engineio",
    "socketio": "python-socketio",
    "eventlet": "eventlet",
    "gunicorn": "gunicorn",
    "uvicorn": "uvicorn",
}


@dataclass(frozen=True)
class Hook:
    """One thing sioctl relies on in a library."""

    target: str  # "engineio.socket:Socket._websocket_handler"
    kind: str
    params: tuple[str, ...] | None  # parameter names (no self); None: not a callable we check
    used_in: tuple[str, ...]  # sioctl source files (repository paths)
    note: str = ""  # what must hold, or what to track upstream

    @property
    def module(self) -> str:
        return self.target.split(":", 1)[0]

    @property
    def path(self) -> tuple[str, ...]:
        """The attribute path inside the module (``("Socket", "_websocket_handler")``)."""
        return tuple(self.target.split(":", 1)[1].split("."))

    @property
    def name(self) -> str:
        """The member's own name (the last part of the target)."""
        return self.path[-1]

    @property
    def library(self) -> str:
        """The distribution that provides it (``python-engineio``...)."""
        return LIBRARIES[self.module.split(".")[0]]

    @property
    def id(self) -> str:
        """A unique name for the entry, as tests show it."""
        return f"{self.target} ({self.kind})"


EIO = "engineio:Server"
SOCKET = "engineio.socket:Socket"
UVICORN_HTTP = "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol"
AIO_SERVING = "worker/aio/serving.py"
AIO_HEAD = "worker/aio/head_deadline.py"
SIO = "socketio:Server"
MANAGER = "socketio:PubSubManager"
ASYNC_MANAGER = "socketio.async_pubsub_manager:AsyncPubSubManager"
WSGI = "eventlet.wsgi"

P_ENGINEIO = "worker/protocol/engineio_rules.py"
P_SERVER = "worker/protocol/engineio_server.py"
P_EIO3 = "worker/protocol/eio3.py"
P_HANDSHAKE = "worker/protocol/eio3_handshake.py"
P_PING = "worker/protocol/ping_interval.py"
P_SOCKETIO = "worker/protocol/socketio_rules.py"
P_SIOV4 = "worker/protocol/sio_v4.py"
# eventlet's websocket handler body with a writer started on demand (issue 19).
P_WEBSOCKET_SERVE = "worker/protocol/websocket_serve.py"
# eventlet: an event's handler started at once in a greenlet of its own (issue 19, echo CPU).
GREEN_HANDLERS = "worker/protocol/green_handlers.py"
# Connection state recovery (issue 18): the server's side and the manager's.
P_RECOVERY = "worker/protocol/recovery.py"
MESSAGING_RECOVERY = "worker/messaging/recovering.py"
# The engine-free core of the protocol rules (worker/protocol/core/): it overrides and copies
# nothing of a server or session class; only its packet codec and one copied test are here.
P_CORE_EIO3 = "worker/protocol/core/eio3_rules.py"
P_CORE_SIO = "worker/protocol/core/sio_rules.py"
P_CORE_JSON = "worker/protocol/core/json_codec.py"
# The async shells over the same core (served end to end by issue 15's asyncio engine).
P_ASYNC_ENGINE = "worker/protocol/async_engineio.py"
P_ASYNC_SIO = "worker/protocol/async_socketio.py"
P_ASYNC_EIO3 = "worker/protocol/async_eio3.py"
P_ASYNC_WEBSOCKET = "worker/protocol/async_websocket.py"
AEIO = "engineio:AsyncServer"
ASOCKET = "engineio.async_socket:AsyncSocket"
ASIO = "socketio:AsyncServer"
FRAMEWORK = "worker/framework/application.py"
# Custom socket ids on both engines (io.generate_id).
FRAMEWORK_IDS = "worker/framework/ids.py"
FRAMEWORK_AIO = "worker/framework/aio.py"
MESSAGING = "worker/messaging/manager.py"
# The engine-free half of the manager, a mixin put before PubSubManager (and before
# AsyncPubSubManager: the BaseManager members it uses are the same ones).
MESSAGING_BASE = "worker/messaging/base.py"
ASYNC_MESSAGING = "worker/messaging/async_manager.py"
CONNECTION = "worker/connection.py"
HTTP = "worker/http_server.py"
MEMORY = "worker/memory.py"
