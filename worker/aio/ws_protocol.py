"""uvicorn's websocket protocol (websockets-sansio) holding less per idle connection (issue 19).

Measured with tracemalloc on the asyncio worker (docs/benchmarks-optimizations.md, "Memory per
idle websocket"): of the ~34 KiB an idle websocket held, uvicorn's protocol object kept ~6 KiB,
of which the handshake's request and response (websockets' ``Request``/``Response`` with their
``Headers``, ~3 KiB) for as long as the connection lasts, though nothing reads them after the
handshake, and an ``asyncio.Queue`` of received messages plus an ``asyncio.Event`` of
writability (four deques allocated up front, ~3 KiB) where at most a message or two ever wait
(uvicorn stops reading after each message until the app takes it). The protocol class the
worker hands upgrades to (:func:`lean_websocket_protocol`) therefore:

- lets go of the handshake's request and response once the accept is written;
- receives into a :class:`~sioctl.worker.protocol.session_queue.SessionQueue` (the
  ``asyncio.Queue`` calls uvicorn makes, with nothing allocated until a reader waits);
- tracks writability with a :class:`LazyEvent` (an ``asyncio.Event`` whose waiters' list
  exists only while someone waits);
- empties the request's headers once the accept is written: websockets' handshake parser (a
  generator suspended for as long as the connection lasts) keeps the request as a local
  variable (~1.7 KiB of ``Headers`` per connection), and drops the permessage-deflate offer
  (``available_extensions``), read only by the handshake; then replaces that parser by the
  frame parser it runs inside itself, when it waits at a frame boundary
  (:func:`restart_parser`: the request object and the outer generator, ~0.6 KiB).

Once the accept is written, the protocol's own attributes that hold the same object on every
connection of the worker (the config, the app, the loop, the logger, the server state's sets,
settings, and state still at its initial value: flags, ping timers that never run) are read
from the class instead (:data:`CLASS_WIDE`), and those read only by the handshake are dropped
(:data:`HANDSHAKE_ONLY`): uvicorn sets 34 attributes in ``__init__``, past the 30 a shared-key
instance dict holds, so every protocol had a full dict of its own (1.5 KiB), against ~0.3 KiB
for the 9 left, which uvicorn's reads of a message set again without growing it.

The HTTP protocol the upgrade came through is freed at once (:class:`LeanUpgradeMixin`):
httptools' parser holds the protocol's callbacks, a reference cycle that kept the parser, the
request's URL and headers of every websocket until a full collection of the cyclic garbage
collector; and the worker's first-head deadline timer of that connection is cancelled.

What uvicorn's protocol does with them is unchanged; worker/library_contract_asyncio.py lists
the members relied on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected

from sioctl.worker.protocol.session_queue import SessionQueue

# uvicorn's websocket protocol attributes that are, after the handshake, the same object on
# every connection of the worker unless uvicorn sets them again (then the instance has its own).
# (read_paused and curr_msg_data_type stay in the instance: uvicorn sets them on every message
# received, and adding a key to the compacted dict would grow it.)
CLASS_WIDE = (
    "config", "app", "loop", "logger", "root_path", "asgi_version", "app_state", "connections",
    "tasks", "close_timeout", "ping_interval", "ping_timeout", "handshake_initiated",
    "handshake_complete", "close_sent", "disconnected", "close_timer", "initial_response",
    "ping_timer", "pong_timer", "pending_ping_payload", "ping_sent_at", "last_ping_rtt",
    "scheme",
)
# Read only to build the handshake's scope and response: dropped from every instance after
# the accept (the class keeps the first connection's, never read).
HANDSHAKE_ONLY = ("default_headers", "server")
_MISSING = object()


def compact_attributes(obj: Any, names: tuple[str, ...], dropped: tuple[str, ...] = ()) -> None:
    """Give ``obj`` an instance dict without those of ``names`` whose value is the very object
    its class holds, nor those of ``dropped``; the class takes the values of the first
    instance compacted (so the class, one per worker's config, must hold only instances that
    share them)."""
    cls = type(obj)
    own = obj.__dict__
    if "_sioctl_class_wide" not in cls.__dict__:
        for name in names + dropped:
            if name in own:
                setattr(cls, name, own[name])
        cls._sioctl_class_wide = True
    wide = cls.__dict__
    # A new dict sized for what is left: deleting keys would not shrink the old one.
    obj.__dict__ = {name: value for name, value in own.items()
                    if name not in dropped
                    and (name not in names or wide.get(name, _MISSING) is not value)}


def restart_parser(conn: Any) -> None:
    """Give websockets' ``ServerProtocol`` ``conn`` a fresh frame parser when its handshake
    parser waits at a frame boundary.

    ``ServerProtocol.parse`` is a generator that reads the handshake request, keeps it as a
    local variable and then runs ``Protocol.parse`` (the frames) inside itself for the
    connection's life: the request object, its headers and the outer generator (~0.6 KiB)
    stay. Replaced, only when the outer generator runs ``Protocol.parse`` and that waits in
    ``at_eof`` with nothing buffered (no frame begun: the fresh generator starts in that very
    state), by ``Protocol.parse`` itself; otherwise left as it is."""
    from websockets.protocol import Protocol
    from websockets.server import ServerProtocol
    from websockets.streams import StreamReader

    outer = getattr(conn, "parser", None)
    inner = getattr(outer, "gi_yieldfrom", None)
    waiting = getattr(inner, "gi_yieldfrom", None)
    reader = getattr(conn, "reader", None)
    if (getattr(outer, "gi_code", None) is not ServerProtocol.parse.__code__
            or getattr(inner, "gi_code", None) is not Protocol.parse.__code__
            or getattr(waiting, "gi_code", None) is not StreamReader.at_eof.__code__
            or reader is None or reader.buffer or reader.eof):
        return
    fresh = Protocol.parse(conn)
    next(fresh)  # runs up to at_eof's wait for data, where the old one is
    conn.parser = fresh


class LazyEvent:
    """``asyncio.Event`` (``set``, ``clear``, ``is_set``, ``wait``) without a deque of waiters
    made up front: the list exists only while a task waits."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._value

    def set(self) -> None:
        """Set the flag and wake every waiting task."""
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        """Clear the flag: ``wait()`` blocks until the next ``set()``."""
        self._value = False

    async def wait(self) -> bool:
        """Return True at once when the flag is set, else once it is set."""
        if self._value:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
                if not self._waiters:
                    self._waiters = None


class LeanWebSocketMixin:
    """Put in front of uvicorn's ``WebSocketsSansIOProtocol`` (see the module's docstring)."""

    # uvicorn's (set in its __init__ or the handshake), as read here.
    queue: Any
    frames: list[bytes]
    close_sent: bool
    close_timer: Any
    curr_msg_data_type: str
    handshake_complete: bool
    transport: Any
    logger: Any
    conn: Any
    app: Any
    scope: Any
    receive: Any
    handle_parser_exception: Any
    send_500_response: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = SessionQueue(None)  # uvicorn calls put_nowait, get and empty
        writable = LazyEvent()
        writable.set()
        self.writable = writable

    async def send(self, message: Any) -> None:
        await super().send(message)  # type: ignore[misc]
        if message.get("type") == "websocket.accept":
            # The handshake is answered: nothing reads the request or the response again.
            request = self.__dict__.pop("request", None)
            self.__dict__.pop("response", None)
            headers = getattr(request, "headers", None)
            if headers is not None:
                # websockets' parser generator keeps the request object itself (a local of
                # ServerProtocol.parse): its headers are emptied instead (scope["headers"] is
                # a list of its own).
                headers.clear()
            conn = getattr(self, "conn", None)
            if conn is not None and getattr(conn, "available_extensions", None):
                conn.available_extensions = ()  # read only by the handshake's accept()
            compact_attributes(self, CLASS_WIDE, HANDSHAKE_ONLY)
            if conn is not None:
                restart_parser(conn)


    # --- reads from the callbacks (worker/protocol/async_ws_reader.py)
    def sioctl_read_by(self, reader: Any) -> list[Any]:
        """From now on each message parsed goes to ``reader.frame(data)`` and every other
        event to ``reader.put_nowait(event)``, not to the receive queue; the ASGI request may
        end without closing the connection (:meth:`run_asgi`), which ends when the reader
        calls :meth:`sioctl_request_ended`. Returns the events the queue held, for the reader
        to take first."""
        queue = self.queue
        pending = []
        while not queue.empty():
            pending.append(queue.get_nowait())
        self.queue = reader
        return pending

    def sioctl_request_ended(self) -> None:
        """The websocket read from the callbacks has ended: what uvicorn's ``run_asgi`` does
        when the app returns (the transport closed, unless a close handshake is under way)."""
        if self.close_timer is None:
            self.transport.close()

    def send_receive_event_to_app(self) -> None:
        reader = self.queue
        if type(reader) is SessionQueue:
            super().send_receive_event_to_app()  # type: ignore[misc]
            return
        # uvicorn's, with the message given to the reader rather than queued (and reads not
        # paused: the reader pauses them while it handles a message in a task).
        frames = self.frames
        data: Any = frames[0] if len(frames) == 1 else b"".join(frames)
        self.frames = []
        if self.close_sent:
            return  # past the server's close: discarded, as uvicorn does
        if self.curr_msg_data_type == "text":
            try:
                data = data.decode()
            except UnicodeDecodeError:
                self.logger.exception("Invalid UTF-8 sequence received from client.")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        reader.frame(data)

    async def run_asgi(self) -> None:
        # uvicorn's, except that the transport stays open when the websocket's reads were
        # handed to a reader of its callbacks (sioctl_read_by): the reader ends it.
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.",
                                  result)
        if self.close_timer is None and type(self.queue) is SessionQueue:
            self.transport.close()


def handed_over_reader(receive: Any) -> Any:
    """The reader of the websocket whose ASGI ``receive`` this is, once its reads were handed
    over (``sioctl_read_by``): it has ``at_end(hook)``; else None."""
    queue = getattr(getattr(receive, "__self__", None), "queue", None)
    return queue if hasattr(queue, "at_end") else None


class LeanUpgradeMixin:
    """Put in front of uvicorn's HTTP protocol class: once a connection is handed to the
    websocket protocol, nothing is left holding the HTTP protocol object (see the module's
    docstring)."""

    # The worker's first-head deadline timer (serving.Serving._attach), while pending.
    sioctl_head_check: Any = None

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()  # type: ignore[misc]
        # httptools' parser holds this protocol's callbacks and the protocol holds the parser:
        # broken here, the protocol (its parser, URL, headers, scope) is freed with the last
        # reference instead of at the next full collection.
        if "parser" in self.__dict__:
            self.parser = None
        handle, self.sioctl_head_check = self.sioctl_head_check, None
        if handle is not None:
            handle.cancel()  # upgraded: no head to wait for; drops the timer's arguments


def lean_http_protocol(protocol_class: type) -> type:
    """``protocol_class`` (uvicorn's HTTP protocol) with :class:`LeanUpgradeMixin`."""
    return type(f"Lean{protocol_class.__name__}", (LeanUpgradeMixin, protocol_class), {})


def lean_websocket_protocol(protocol_class: type) -> type:
    """``protocol_class`` (uvicorn's websockets-sansio protocol) with
    :class:`LeanWebSocketMixin`."""
    return type(f"Lean{protocol_class.__name__}", (LeanWebSocketMixin, protocol_class), {})
