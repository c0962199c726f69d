"""One client connection in the worker, and the deadlines that cut it while it is idle.

A connection is *waiting* from its arrival until its first request head is complete, and again
between two requests on a kept-alive connection; it is *busy* while a request is served, and a
long-poll GET waiting for data or an open websocket is busy for as long as it lasts. Only a
waiting connection is ever cut:

- by the header timeout (``--header-timeout``, 10 s): a new connection must have delivered a
  complete request head that long after it reached the worker, TLS handshake included; a later
  request on a kept-alive connection must complete its head that long after it began;
- by the keep-alive timeout (``--keepalive``, 2 s): a kept-alive connection may sit idle that
  long between two requests;
- when the worker is full and a new connection arrives (see worker/http_server.py).

Each deadline is one hub timer that shuts the socket down; the green thread reading it then
sees the end of the stream and eventlet.wsgi closes the connection. eventlet.wsgi has no such
deadlines itself: its ``keepalive`` number is a per-read socket timeout (a client sending a
byte a second never trips it), applied to the first request too, and nothing bounds the headers.

A busy connection's response writes are bounded too (:class:`StallLimitedWrites`): a write that
finds no room in the socket for the server's ``write_span`` ends the connection, a client that
reads slowly is waited for (the websocket's rule, worker/protocol/core/write_stall.py).
"""

from __future__ import annotations

import collections
import http.client
import io
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import eventlet.greenio
import eventlet.semaphore
import eventlet.websocket
import eventlet.wsgi
from eventlet.hubs import get_hub

from sioctl.worker.protocol.core import write_stall
from sioctl.worker.protocol.engineio_rules import (
    CLOSE_CONNECTION,
    WEBSOCKET_OPENED,
    WEBSOCKET_READER,
)

# What a handler whose connection became a websocket has as its request headers.
_NO_HEADERS = http.client.HTTPMessage()
WAITING = "waiting"
BUSY = "busy"
# An unread request body up to this size is read and dropped so the connection can serve its
# next request (what eventlet.wsgi does with any size); a bigger one closes the connection.
DRAIN_LIMIT = 64 * 1024


class Connection:
    """A client connection: eventlet's per-connection state plus ours.

    ``state`` is the ``[address, socket, eventlet state, connection]`` list eventlet.wsgi's
    handler takes (it uses the first three items); ``waiting`` is the server's table of waiting
    connections, oldest first, which this keeps up to date.
    """

    __slots__ = ("key", "state", "requests", "cut_reason", "_waiting", "_timer")

    def __init__(
        self, key: int, sock: Any, addr: Any, waiting: OrderedDict[int, Connection]
    ) -> None:
        self.key = key
        self.state: list[Any] = [addr, sock, eventlet.wsgi.STATE_IDLE, self]
        self.requests = 0
        self.cut_reason: str | None = None
        self._waiting = waiting
        self._timer: Any = None
        self.wait()

    @property
    def sock(self) -> Any:
        return self.state[1]

    @property
    def phase(self) -> str:
        return WAITING if self.key in self._waiting else BUSY

    def wait(self, seconds: float = 0.0, why: str = "") -> None:
        """Now waiting for a request head; cut after ``seconds`` (0: no deadline)."""
        self._waiting[self.key] = self
        self._waiting.move_to_end(self.key)
        self.deadline(seconds, why)

    def deadline(self, seconds: float, why: str) -> None:
        """Cut the connection after ``seconds`` unless it becomes busy first (0: never)."""
        self._cancel()
        if seconds > 0:
            self._timer = get_hub().schedule_call_global(seconds, self.cut, why)

    def busy(self) -> None:
        """A request head is complete: no deadline until the response is over."""
        self._cancel()
        self._waiting.pop(self.key, None)

    def closed(self) -> None:
        """The connection is gone: forget it (and let go of it: ``state`` pointing back at
        this connection is a reference cycle, which would keep the socket and its buffers
        until a full pass of the cyclic garbage collector)."""
        self.busy()
        self.state[3] = None

    def cut(self, why: str) -> None:
        """Shut the socket down (from a timer or another green thread); its reader ends it."""
        self._timer = None
        if self.cut_reason is None:
            self.cut_reason = why
        self._waiting.pop(self.key, None)
        try:
            eventlet.greenio.shutdown_safe(self.sock)
        except Exception:  # already closed or broken: it is ending anyway
            pass

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _BoundedInput(eventlet.wsgi.Input):
    """A request body eventlet drains only up to DRAIN_LIMIT bytes (then the connection closes).

    After each response eventlet reads and throws away whatever body the app left unread, so
    the connection can carry the next request: a 100 MB Content-Length the app refused was read
    in full. Raising OSError here is eventlet's own signal to close instead of draining.
    """

    def discard(self, buffer_size: int = 16 << 10) -> None:
        left = DRAIN_LIMIT
        while left > 0:
            data = self.read(min(buffer_size, left))
            if not data:
                return
            left -= len(data)
        if not self.read(1):
            return  # exactly DRAIN_LIMIT bytes were left
        raise OSError("request body too large to drain; closing the connection")


class StallLimitedWrites(io.RawIOBase):
    """The raw side of a connection's response file: each ``send`` waits at most ``span``
    seconds for room in the socket (eventlet's green ``send`` times out per wait), then looks
    at the kernel's send queue: a client that read something since the last look is waited
    for again; one that read nothing for a span (seen within two spans) has ``stalled()``
    called (it logs and shuts the socket down) and the ``TimeoutError`` raised, which eventlet.wsgi
    takes as a failed write: the response ends, so does the connection, and its last flush
    fails at once on the shut socket instead of waiting a second span.

    Only the writes carry the timeout: the socket's own stays None, so the reads of request
    heads and bodies keep their limits (the deadlines above, the app's)."""

    def __init__(self, sock: Any, span: float, stalled: Callable[[], None]) -> None:
        super().__init__()
        self._sock = sock
        self._span = span
        # Weak: the handler holds this writer (its wfile), and a cycle would keep every
        # finished connection's handler for the cyclic collector (see TimedProtocol.finish).
        self._stalled = weakref.WeakMethod(stalled)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Send what of ``data`` the socket takes (at least a byte); see the class."""
        sock = self._sock
        sock.settimeout(self._span)
        try:
            watch = None
            while True:
                try:
                    return int(sock.send(data))
                except TimeoutError:
                    # The kernel wakes a waiting send only once a good part of its buffer
                    # is free: a slow reader's progress shows in its send queue (write_stall.
                    # SendWatch). Where the wait began is not seen (a send per write, no look
                    # at the queue before it): the first time out is only looked at.
                    if watch is None:
                        watch = write_stall.SendWatch(sock, begun=False)
                    if watch.stalled():
                        stalled = self._stalled()
                        if stalled is not None:
                            stalled()
                        raise
        finally:
            sock.settimeout(None)  # what eventlet.wsgi sets once a request line is read


class TimedProtocol(eventlet.wsgi.HttpProtocol):
    """eventlet.wsgi's connection handler with the header and keep-alive deadlines.

    The server it is given carries ``header_timeout`` and ``keepalive_timeout`` (seconds),
    ``write_span`` (seconds, 0: none; :class:`StallLimitedWrites`) and ``stall_logger``.

    A websocket request may hand its reading over (``WEBSOCKET_READER`` in its environ): the
    request's green thread then returns without ending the connection, and whoever takes
    :meth:`websocket_handover` reads the websocket and ends the connection (worker/
    http_server.py).
    """

    # The function that reads the websocket this connection became, once the request has
    # handed it over; None otherwise.
    _websocket_reader: Callable[[], None] | None = None
    # The request's eventlet posthooks (the access log's line), run when the websocket ends.
    _websocket_posthooks: list[Any] | None = None

    def setup(self) -> None:
        """eventlet's files on the socket, the response's writes bounded by the server's
        ``write_span`` (:class:`StallLimitedWrites`)."""
        super().setup()
        span = self.server.write_span
        if span > 0:
            plain: Any = self.wfile  # type: ignore[has-type]
            self.wfile = io.BufferedWriter(
                StallLimitedWrites(self.connection, span, self._write_stalled), self.wbufsize)
            plain.close()  # nothing written yet: it lets go of its buffer and socket reference

    def _write_stalled(self) -> None:
        """A response write found no room for the span: say so (once: the socket is shut
        down here, so every later write fails at once) and end the connection."""
        path = str(getattr(self, "path", "") or "").split("?", 1)[0]
        who = write_stall.http_client(getattr(self, "command", None) or "-", path or "-",
                                      str(self.client_address[0]))
        write_stall.log_dropped(self.server.stall_logger, who, self.server.write_span)
        self.close_connection = 1
        try:
            eventlet.greenio.shutdown_safe(self.connection)
        except Exception:  # already closed or broken: it is ending anyway
            pass

    def handle_one_request(self) -> None:
        conn: Connection = self.conn_state[3]
        if conn.requests:
            # Between two requests: idle until the next one starts, then its head has
            # header_timeout to arrive.
            conn.wait(self.server.keepalive_timeout, "idle past the keep-alive timeout")
            if not self._next_request_started():
                self.close_connection = 1
                return
            conn.deadline(self.server.header_timeout, "no complete request head in time")
        conn.requests += 1
        super().handle_one_request()

    def _next_request_started(self) -> bool:
        """Wait for the first byte of the next request; False when the connection ended."""
        try:
            return bool(self.rfile.peek(1))
        except (OSError, ValueError):  # reset, shut down by a deadline, or a closed file
            return False

    def get_environ(self) -> dict[str, Any]:
        # Called once the request head is complete, before the app runs.
        self.conn_state[3].busy()
        environ: dict[str, Any] = super().get_environ()
        environ["eventlet.input"].__class__ = _BoundedInput
        # eventlet writes its own version (HTTP/1.0) here; PEP 3333 means the request's, and
        # the access log's %(r)s and %(H)s show it.
        environ["SERVER_PROTOCOL"] = self.request_version
        environ[CLOSE_CONNECTION] = self._close_after_response
        environ[WEBSOCKET_OPENED] = self._websocket_opened
        environ[WEBSOCKET_READER] = self._read_websocket_later
        if not self.server.ws_per_message_deflate:
            # eventlet's websocket app accepts permessage-deflate whenever a client offers it
            # (every browser does); without the offer the client uses plain frames, as with
            # uvicorn's ws_per_message_deflate=False on the asyncio engine.
            environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return environ

    def finish(self) -> None:
        """eventlet's end of the connection, and the last environ let go of.

        The environ holds closures over this handler (eventlet's ``eventlet.set_idle``, our
        CLOSE_CONNECTION) and the handler holds the environ: a reference cycle, so every
        finished connection (its socket objects, buffers, environ, websocket) waited for a
        full pass of the cyclic garbage collector, which is rare in a process with many
        objects. After a mass disconnect that was every connection (docs/design.md, "Memory
        after mass disconnects").
        """
        if self._websocket_reader is not None:
            return  # the websocket's reader ends the connection (websocket_handover)
        try:
            super().finish()
        finally:
            self.__dict__.pop("environ", None)

    def _read_websocket_later(self, read: Callable[[], None]) -> None:
        """The websocket this request opened is read by ``read``, run later in a green thread
        of its own (worker/http_server.py): eventlet.wsgi's end of the request (its posthooks:
        the access log's line, with the websocket's duration) and of the connection wait for
        the websocket's end (:class:`WebsocketHandover`). The request's green thread returns
        meanwhile."""
        self._websocket_reader = read
        environ = self.environ
        # The access log appends its hook, after the app returns, to the list it found in the
        # environ; eventlet.wsgi runs what the environ holds then, which is now empty.
        self._websocket_posthooks = environ["eventlet.posthooks"]
        environ["eventlet.posthooks"] = []

    def websocket_handover(self) -> WebsocketHandover | None:
        """Once the connection is served (``__init__`` has returned): the websocket a request
        handed over, with what ending the request and the connection takes, or None. This
        handler is let go of then: the environ (which python-socketio keeps) no longer holds
        the callables bound to it, and the handover holds only the request's environ, its
        posthooks and the socket's files."""
        read = self._websocket_reader
        if read is None:
            return None
        environ = self.__dict__.pop("environ", None) or {}
        for key in (CLOSE_CONNECTION, WEBSOCKET_OPENED, WEBSOCKET_READER, "eventlet.set_idle"):
            environ.pop(key, None)  # each holds this handler; read only during the request
        return WebsocketHandover(read, environ, self._websocket_posthooks or [],
                                 (self.wfile, self.rfile))

    def _websocket_opened(self, ws: Any) -> None:
        """A websocket (``ws``, eventlet's) took the connection over (its handshake is
        written): close the buffered files eventlet.wsgi reads requests from and writes
        responses to, which frees their buffers (8 KiB read, 16 KiB write) for as long as the
        websocket lasts; drop the parsed request head and the websocket's unused deque.

        The websocket reads and writes the socket itself, and eventlet.wsgi reads no further
        request on the connection once a websocket has handled it. Each buffered file is
        replaced by an unbuffered one on the same socket before it is closed, so the socket
        keeps as many file references as before (the handler's ``finish`` closes them, as
        before). Closing the files alone let the websocket's own ``close`` close the
        descriptor under its reader, which then waited on a descriptor nothing would wake, and
        a drain waited for that connection until the graceful timeout killed the worker
        (test_sighup_replaces_workers_one_slot_at_a_time); detaching them kept the buffers,
        which the environ's ``wsgi.input`` still holds.
        """
        for name, mode in (("rfile", "rb"), ("wfile", "wb")):
            stream = getattr(self, name)
            setattr(self, name, self.connection.makefile(mode, 0))
            try:
                stream.close()
            except (OSError, ValueError):  # a write buffer that could not be flushed
                pass
        # The parsed request head (an email.message with its header list, ~1.3 KiB): the
        # environ carries every header the app reads; eventlet.wsgi reads these only to write
        # a response, which a websocket's connection never gets.
        self.headers = _NO_HEADERS
        # eventlet's RFC 6455 websocket inherits a message deque (~0.75 KiB) from the old
        # hixie websocket class whose wait() used it; its own wait() reads frames instead.
        if type(ws).wait is not eventlet.websocket.WebSocket.wait:
            ws.__dict__.pop("_msgs", None)
        # Its send lock's waiters' deque (~0.75 KiB), made up front, is for a contended send;
        # nothing has sent on the websocket yet (its handler has not started).
        if type(getattr(ws, "_sendlock", None)) is eventlet.semaphore.Semaphore:
            ws._sendlock = SendLock()

    def _close_after_response(self) -> None:
        """The response says ``Connection: close`` and no unread body is drained (for an app
        refusing a request whose body it will not read)."""
        self.close_connection = 1


class WebsocketHandover:
    """A websocket a request handed over (``TimedProtocol.websocket_handover``): ``read``
    reads it to its end; :meth:`end` then does what eventlet.wsgi does at the end of the
    request and of the connection's handler (the posthooks, the socket's files closed; the
    caller closes the socket)."""

    __slots__ = ("read", "_environ", "_posthooks", "_files")

    def __init__(self, read: Callable[[], None], environ: dict[str, Any],
                 posthooks: list[Any], files: tuple[Any, ...]) -> None:
        self.read = read
        self._environ = environ
        self._posthooks = posthooks
        # Unbuffered since the websocket opened (TimedProtocol._websocket_opened); they hold
        # the socket's file references until here, as the handler did.
        self._files = files

    def end(self) -> None:
        """The websocket has ended: run the request's posthooks (the access log's line), then
        close the files (BaseHTTPRequestHandler.finish)."""
        hooks, self._posthooks = self._posthooks, []
        try:
            for hook, args, kwargs in hooks:
                hook(self._environ, *args, **kwargs)
        finally:
            files, self._files = self._files, ()
            for file in files:
                try:
                    file.close()
                except (OSError, ValueError):  # as eventlet.wsgi's finish: a broken pipe
                    pass


class SendLock(eventlet.semaphore.Semaphore):
    """eventlet's ``Semaphore(1)`` whose waiters' deque is made when a green thread first has
    to wait, not up front: a websocket's send lock is held for one ``sendall`` at a time and
    almost never waited on, and the deque was ~0.75 KiB of every idle websocket."""

    _waiters: Any = ()  # empty and falsy, as the deque eventlet's methods read

    def __init__(self) -> None:  # eventlet's, without the deque
        self.counter = 1

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if self.counter > 0 and not self._waiters:
            self.counter -= 1  # what eventlet's acquire does when nothing waits
            return True
        if not isinstance(self._waiters, collections.deque):
            self._waiters = collections.deque()
        return bool(super().acquire(blocking, timeout))
