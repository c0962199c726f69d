"""An established asyncio Engine.IO websocket read from uvicorn's protocol callbacks.

An idle websocket read by a coroutine waits under the ASGI request's chain (uvicorn's
``run_asgi`` task, sioctl's and python-engineio's ``handle_request``, ``serve_websocket``, the
guarded ``wait``, uvicorn's ``receive``): a task and ~2.5 KiB of suspended coroutines per idle
websocket (docs/benchmarks-optimizations.md, "Asyncio reads from the protocol's callbacks").
Once the session is established, :func:`.async_websocket.serve_websocket` hands the websocket
to a :class:`ProtocolReader` and returns: the request's chain ends, uvicorn's protocol stays
open (worker/aio/ws_protocol.py, ``LeanWebSocketMixin``), and each message it parses in
``data_received`` is given to the reader, which checks it and gives it to the session in that
very callback when its handling does not wait (an Engine.IO MESSAGE, whose python-socketio
dispatch runs in a task of python-engineio's, ``async_handlers``; a PONG), else in a task.
Reads are paused while a message's task runs, as uvicorn pauses them until its app takes a
message. The end (the client closed, a read failed, the deadline ran out, the session closed)
is :func:`.async_websocket.serve_websocket`'s, in a task: the writer finished, the session
closed, the request's end hooks (the access log's line) run, the transport closed.

The eventlet engine's counterpart is the reader at a shallow stack (worker/connection.py,
``WebsocketHandover``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from engineio import exceptions, packet

from .async_socketio import events_dispatch_inline
from .core import ws_upgrade

# Engine.IO packets whose handling by the session never waits nor runs an application's
# handler inline: run in the protocol's callback (no task is current there).
_INLINE = (packet.MESSAGE, packet.PONG)
# A Socket.IO EVENT packet (type 2) as text: "2", optionally "/namespace," and an ack id.
_SIO_EVENT = "2"
# A reader's end hooks once they have run (never appended to): a hook given later runs at once.
_HOOKS_RAN: tuple[Callable[[], None], ...] = ()


def hand_over_target(guarded: Any) -> Any:
    """The protocol ``guarded`` (the session's guarded websocket) reads uvicorn's ``receive``
    of, when that protocol can be read from its callbacks (``sioctl_read_by``) and the worker's
    own routing gave the request to python-engineio (``async_asgi.ROUTED_BY_WORKER``); else
    None. An app mounted inside another ASGI app (Starlette's ``Mount``, a middleware of the
    application's) keeps its request for the websocket's life, as ASGI has it: code around it
    may run when it returns (a span closed, a gauge of open websockets lowered)."""
    if not getattr(getattr(guarded, "_ws", None), "sioctl_routed", False):
        return None
    protocol = getattr(getattr(guarded, "_receive", None), "__self__", None)
    if getattr(protocol, "sioctl_read_by", None) is None:
        return None
    return protocol


class ProtocolReader:
    """Reads an established websocket from its protocol's callbacks (see the module's
    docstring). The protocol calls :meth:`frame` with each message and :meth:`put_nowait`
    with its other ASGI events (only ``websocket.disconnect``): the reader takes the place of
    the protocol's receive queue."""

    __slots__ = ("_session", "_guarded", "_protocol", "_deadline", "_finish", "_backlog",
                 "_busy", "_ended", "_end_hooks", "_events_inline")

    def __init__(self, session: Any, guarded: Any, protocol: Any, deadline: Any,
                 finish: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._session = session
        self._guarded = guarded
        self._protocol = protocol
        self._deadline = deadline  # its check calls cancel() (ReadDeadline)
        self._finish = finish  # the end of serve_websocket
        # Messages (and a disconnect) that came while one was handled, in order; at most what
        # the transport delivered in the read during which reads were paused.
        self._backlog: deque[Any] | None = None
        self._busy = False  # a message's handling (or a binary frame's yield) is under way
        self._ended = False
        self._end_hooks: list[Callable[[], None]] | tuple[Callable[[], None], ...] | None = None
        # python-socketio's EVENT dispatch starts the handler's task and returns: such a
        # MESSAGE is given to the session in the callback even though python-socketio turns
        # python-engineio's async_handlers off (docs/benchmarks-optimizations.md, s27-fixed).
        self._events_inline = events_dispatch_inline(session.server)

    def start(self) -> None:
        """Take the protocol's reads over; what it had queued is read first."""
        self._deadline._task = self  # the deadline's check ends the reader (cancel)
        for event in self._protocol.sioctl_read_by(self):
            self.put_nowait(event)
        if not self._ended and not self._busy:
            self._resume_reads()

    # --- what the protocol calls
    def frame(self, data: Any) -> None:
        """A message the client sent (str or bytes)."""
        if self._ended:
            return
        if self._busy:
            self._hold(data)
            return
        self._handle(data)
        if not self._busy and not self._ended:
            self._resume_reads()

    def put_nowait(self, event: dict[str, Any]) -> None:
        """An ASGI event of the protocol's (``websocket.receive`` from what was queued before
        the hand-over; ``websocket.disconnect``: the client closed, the connection is lost or
        the server shuts down)."""
        if self._ended:
            return
        if event.get("type") == "websocket.receive":
            data = event.get("bytes")
            self.frame(data if data is not None else event.get("text"))
            return
        if self._busy:
            self._hold(event)  # after the messages before it
            return
        self._end_with_error(OSError())

    def empty(self) -> bool:
        """No event is waiting (uvicorn's ``receive`` asks; nothing calls it after the
        hand-over)."""
        return True

    def cancel(self) -> bool:
        """The read deadline ran out (``ReadDeadline``): the reader ends, as a read cancelled
        by ``asyncio.wait_for`` did."""
        self._end()
        return True

    def at_end(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the websocket has ended (the request's end: the access log's
        line); at once if it has."""
        hooks = self._end_hooks
        if hooks is _HOOKS_RAN:
            hook()
            return
        if not isinstance(hooks, list):
            hooks = self._end_hooks = []
        hooks.append(hook)

    # --- the reads
    def _handle(self, data: Any) -> None:
        """One message: checked (its size, the rules), then given to the session. Never reads
        on itself (its callers do): a backlog of messages handled inline is read by
        :meth:`_next`'s loop, not by a recursion one message deep each."""
        session = self._session
        self._deadline.done()
        if session.closed:
            self._end()
            return
        if not session.upgrading:
            session.upgrade_settled()
        try:
            checked = session.checked_websocket_frame(data)
            if ws_upgrade.frame_too_large(checked, session.server.max_http_buffer_size):
                raise ValueError("packet is too large")  # as python-engineio
        except Exception as exc:  # InvalidPacket too: the session is closed, as the loop did
            self._end_with_error(exc)
            return
        pkt = decoded(session, checked)
        if pkt is None:
            self._after(True, isinstance(checked, bytes))
            return
        if pkt.packet_type in _INLINE and (
                session.server.async_handlers or (
                    self._events_inline and type(pkt.data) is str
                    and pkt.data[:1] == _SIO_EVENT)):
            coro = received(session, pkt)
            try:
                waited = coro.send(None)
            except StopIteration as stop:
                self._after(bool(stop.value), isinstance(checked, bytes))
                return
            task = asyncio.get_running_loop().create_task(_resumed(coro, waited))
        else:
            task = asyncio.get_running_loop().create_task(received(session, pkt))
        self._busy = True
        self._pause_reads()
        binary = isinstance(checked, bytes)
        task.add_done_callback(lambda t: self._handled(_task_result(t), binary))

    def _after(self, go_on: bool, binary: bool) -> None:
        """A message's handling has ended; ``go_on`` False: the session says it is closed. Ends
        the reads, or holds them one loop iteration after a binary frame; never reads on."""
        if not go_on or self._session.closed:
            self._end()
            return
        if binary:
            # As the guarded websocket's wait: one loop iteration after a binary frame lets
            # the handler tasks count it against max_http_buffer_size before the next frame.
            self._busy = True
            self._pause_reads()
            asyncio.get_running_loop().call_soon(self._next)

    def _handled(self, go_on: bool, binary: bool) -> None:
        """A message's task has ended: as :meth:`_after`, then read on."""
        if self._ended:
            return
        self._busy = False
        self._after(go_on, binary)
        if not self._busy:
            self._next()

    def _next(self) -> None:
        """Read on: what came while a message was handled, then the connection."""
        self._busy = False
        backlog = self._backlog
        while not self._ended and not self._busy and backlog:
            item = backlog.popleft()
            if isinstance(item, dict):
                self._end_with_error(OSError())  # a disconnect held behind the messages
            else:
                self._handle(item)
        if not self._ended and not self._busy:
            self._backlog = None
            self._resume_reads()

    def _hold(self, item: Any) -> None:
        if self._backlog is None:
            self._backlog = deque()
        self._backlog.append(item)

    def _pause_reads(self) -> None:
        protocol = self._protocol
        if not protocol.read_paused:
            protocol.read_paused = True
            protocol.transport.pause_reading()

    def _resume_reads(self) -> None:
        """Reading again: the deadline watches the wait for the next message."""
        protocol = self._protocol
        if protocol.read_paused:
            protocol.read_paused = False
            protocol.transport.resume_reading()
        self._deadline.waiting()

    # --- the end
    def _end_with_error(self, exc: BaseException) -> None:
        session = self._session
        if not session.closed:
            session.server.logger.info('%s: Unexpected error "%s", closing connection',
                                       session.sid, str(exc))
        self._end()

    def _end(self) -> None:
        """No more reads: serve_websocket's end runs in a task."""
        if self._ended:
            return
        self._ended = True
        self._backlog = None
        task = asyncio.get_running_loop().create_task(self._finish())
        task.add_done_callback(self._ended_request)

    def _ended_request(self, task: asyncio.Task[None]) -> None:
        """serve_websocket's end is done: the request's end (uvicorn's ``run_asgi``'s: the
        transport closed unless a close handshake is under way; the end hooks)."""
        if not task.cancelled() and task.exception() is not None:
            self._session.server.logger.error(
                "Exception in ASGI application", exc_info=task.exception())
        hooks, self._end_hooks = self._end_hooks, _HOOKS_RAN
        try:
            for hook in hooks or ():
                hook()
        finally:
            self._protocol.sioctl_request_ended()


def decoded(session: Any, data: Any) -> packet.Packet | None:
    """The Engine.IO packet of a frame's ``data``; None when it is none (logged unless it is an
    unknown type), and the reads go on, as python-engineio's."""
    try:
        return packet.Packet(encoded_packet=data)
    except exceptions.UnknownPacketError:
        return None
    except Exception:
        session.server.logger.exception("Unknown receive error")
        return None


async def received(session: Any, pkt: Any) -> bool:
    """Give a packet read to the session; False when the session says it is closed."""
    try:
        await session.receive(pkt)
    except exceptions.UnknownPacketError:
        pass
    except exceptions.SocketIsClosedError:
        session.server.logger.info("Receive error -- socket is closed")
        return False
    except Exception:  # as python-engineio: log it and read on
        session.server.logger.exception("Unknown receive error")
    return True


async def _resumed(coro: Coroutine[Any, Any, bool], waited: Any) -> bool:
    """The rest of ``coro``, which was run in a callback until it waited on ``waited``: the
    steps an asyncio task would take. A bare yield is ``asyncio.sleep(0)``; a future is
    awaited, then the coroutine resumed reads its outcome itself; a cancellation of this task
    that did not cancel the future is thrown into the coroutine."""
    while True:
        thrown: BaseException | None = None
        try:
            if waited is None:
                await asyncio.sleep(0)
            else:
                waited._asyncio_future_blocking = False
                await waited
        except BaseException as exc:
            if waited is None or not waited.done():
                thrown = exc
        try:
            waited = coro.send(None) if thrown is None else coro.throw(thrown)
        except StopIteration as stop:
            return bool(stop.value)


def _task_result(task: asyncio.Task[bool]) -> bool:
    """A message task's outcome: False (end the reads) when it was cancelled or failed."""
    if task.cancelled():
        return False
    return task.exception() is None and bool(task.result())
