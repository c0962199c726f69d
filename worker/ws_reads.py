"""Websocket reads on eventlet: one ``recv`` per burst of frames, no timer per read.

eventlet's ``RFC6455WebSocket`` reads a frame in three or four ``recv`` calls on its green
socket (the 2-byte header, the mask, the payload, an extended length between), and
python-engineio gives that socket a timeout (``ping_interval + ping_timeout``), so the read that
waits for the next frame also schedules and cancels a hub timer. Under an echo load that was a
sixth of a worker's CPU (docs/benchmarks-optimizations.md, "Echo and fixed costs").
:class:`BufferedReads` takes the socket's place in the websocket: ``recv(n)`` is served from
what one ``recv(READ_SIZE)`` brought, and the time limit is kept by one hub timer per
websocket, moved only when it fires. Everything else is the green socket's.

On a plain TCP (or Unix) socket the wait itself is :class:`BufferedReads`' own: eventlet's
``trampoline`` registers the fd with the hub's epoll before every wait and unregisters it
after (two ``epoll_ctl`` calls per message, ~5% of a worker under an echo load). Here the
websocket's listener stays *parked* in the hub between reads, the fd in the epoll set: while
the reader is busy (a handler runs in its stead, see ``protocol.green_handlers``) the hub does
not run, and when the fd turns readable with nobody waiting (the reader blocked elsewhere: a
write) the listener drops itself with one ``epoll_ctl`` so that the hub never spins on it. It
is dropped for good when the socket closes or a read ends the websocket; eventlet's "one
reader per fd" rule holds, since the parked listener is the reader's own (another reader of
the fd would fail as before: the websocket's reads all come here). Under TLS (whose socket may
hold decrypted bytes the fd does not show) the green socket's own wait is kept.

Writes keep python-engineio's socket timeout, which the reads took over, as the limit on one
wait for room (:meth:`BufferedReads.sendall`): a frame goes out with one non-blocking ``send``
when the socket takes it whole (the OS socket's, or under TLS the stdlib's ``SSLSocket.send``
under eventlet's: :func:`tls_send`); otherwise the writer waits for room (eventlet's
``trampoline``, the span at most) between non-blocking sends. A wait that ends without room is
a stall only when the kernel's send queue did not shrink meanwhile
(:class:`.protocol.core.write_stall.SendWatch`): Linux wakes a writer only once a good part of
its send buffer is free, which a client reading a few KB at a time may take many spans to
free, and it is waited for. A client that reads nothing for a span has its socket shut down,
which ends the websocket's reads too, and is logged once: without it the writer waited for
ever and so did the reader's end, the session's queue growing and the connection counted.

Importing this module does not import eventlet (the protocol shells import it on both engines);
the hub is looked up when a read first waits.
"""

from __future__ import annotations

import errno
import socket
import ssl
import time
import types
from typing import Any

from .protocol.core import write_stall
from .ws_mask import apply_mask

# The most one recv() brings. A 16 KiB message (and its frame header) arrives in one read; a
# burst of small frames is read at once. Freed as soon as it has been read (an idle websocket
# holds no buffer).
READ_SIZE = 64 * 1024
# take_frame's answer when the next frame is not one it reads (eventlet's reader reads it).
NOT_SIMPLE: Any = object()
# First byte of a frame take_frame reads: FIN, no RSV bit, text / binary opcode (RFC 6455, 5.2).
_TEXT_FIN, _BINARY_FIN = 0x81, 0x82
# What eventlet's green recv answers b"" for (the peer reset or shut the connection).
_CLOSED_ERRNOS = frozenset((errno.ECONNRESET, errno.ESHUTDOWN, errno.EPIPE))


class BufferedReads:
    """The socket a websocket reads from, with its reads buffered (see the module)."""

    __slots__ = ("_sock", "_data", "_pos", "_span", "_since", "_reader", "_timer", "_raw",
                 "_hub", "_parked", "_waiting", "_closed", "_drained", "_owner", "_shut",
                 "_tls_send")

    def __init__(self, sock: Any, owner: Any = None) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0
        self._span: float | None = sock.gettimeout()
        self._since: float | None = None  # when the read under way began waiting
        self._reader: Any = None  # the greenlet waiting in that read
        self._timer: Any = None  # the hub timer that ends a read waiting past _span
        # The non-blocking OS socket under the green one when this class waits for it itself
        # (plain TCP or Unix socket), else None (TLS: the green socket's own wait).
        self._raw: Any = plain_os_socket(sock)
        # Under TLS: the send that does not wait (tls_send), for sendall.
        self._tls_send: Any = tls_send(sock) if self._raw is None else None
        self._hub: Any = None  # eventlet's hub, once a read has waited
        self._parked: Any = None  # the hub's READ listener of the fd, while parked
        self._waiting = False  # the reader is switched out to the hub, waiting for the fd
        self._closed = False
        self._drained = False  # the last read emptied the socket: wait before the next
        # The session whose id a stalled write's log line names (its ``server.logger`` and
        # ``sid``); None once a write has stalled (logged once) or the socket is closed.
        self._owner: Any = owner
        self._shut = False  # a write stalled and shut the socket down (see _stalled)
        # A waiting read trampolines without a timer of its own; on a plain socket the green
        # socket keeps the span as its timeout (for whatever else writes through it).
        sock.settimeout(self._span if self._raw is not None else None)

    def recv(self, size: int) -> bytes:
        """At most ``size`` bytes: what is buffered, or what one read brings (b"": the end)."""
        data, pos = self._data, self._pos
        if pos >= len(data):
            data, pos = self._fill(), 0
            if len(data) <= size:
                return data
            self._data = data
        end = pos + size
        if end >= len(data):
            self._data, self._pos = b"", 0
            return data[pos:] if pos else data
        self._pos = end
        return data[pos:end]

    @property
    def raw(self) -> Any:
        """The OS socket this class reads and waits for itself, or None (TLS)."""
        return self._raw

    def take_frame(self, max_length: int) -> Any:
        """The next message when it is one whole frame that eventlet's ``RFC6455WebSocket``
        would hand over as it is: FIN, no RSV bit, text or binary, masked, at most
        ``max_length`` bytes (and not over 64 KiB), text valid UTF-8: a ``str`` for text,
        ``bytes`` for binary, read off the buffer (one read first when the buffer is empty).
        :data:`NOT_SIMPLE` for anything else, with nothing consumed: the websocket's own
        reader then reads it (control frames, fragments, an incomplete frame, the end of the
        stream, the errors and their close codes). A failed read raises."""
        data, pos = self._data, self._pos
        if pos >= len(data):
            data = self._fill()
            if not data:
                return NOT_SIMPLE  # the end: eventlet's reader meets it again
            self._data, self._pos = data, pos = data, 0
        size = len(data)
        if size - pos < 6:
            return NOT_SIMPLE
        first, second = data[pos], data[pos + 1]
        if (first != _TEXT_FIN and first != _BINARY_FIN) or second < 0x80:
            return NOT_SIMPLE  # a control frame, a fragment, RSV bits, or not masked
        length = second & 0x7F
        head = pos + 6
        if length == 126:
            head = pos + 8
            if head > size:
                return NOT_SIMPLE
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
        elif length == 127:
            return NOT_SIMPLE
        end = head + length
        if length > max_length or end > size:
            return NOT_SIMPLE
        payload = apply_mask(data[head:end], data[head - 4:head], length) if length else b""
        if first == _TEXT_FIN:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                return NOT_SIMPLE  # eventlet fails the connection (1007)
            self._consumed(end)
            return text
        self._consumed(end)
        return payload

    def _consumed(self, end: int) -> None:
        if end >= len(self._data):
            self._data, self._pos = b"", 0
        else:
            self._pos = end

    def _fill(self) -> bytes:
        """One read of up to READ_SIZE bytes, waiting at most the socket's timeout for it."""
        if self._span is None:
            return self._sock.recv(READ_SIZE)
        import greenlet

        self._since = time.monotonic()
        self._reader = greenlet.getcurrent()
        if self._timer is None:
            self._arm(self._span)
        try:
            if self._raw is None:
                return self._sock.recv(READ_SIZE)
            return self._read_raw()
        finally:
            self._since = self._reader = None

    def _read_raw(self) -> bytes:
        """One ``recv`` of the OS socket, waiting for the fd with the parked listener while
        it has nothing (b"" at the end, as eventlet's green ``recv``).

        After a read that emptied the socket (fewer bytes than asked for) the wait comes
        first: a ``recv`` then would almost always fail with ``EAGAIN`` (a system call and an
        exception per message), and the epoll set being level-triggered, the wait ends at once
        if bytes came meanwhile."""
        raw = self._raw
        if self._drained:
            self._wait_readable()
        while True:
            try:
                data: bytes = raw.recv(READ_SIZE)
            except BlockingIOError:
                self._wait_readable()
                continue
            except OSError as exc:
                self._unpark()
                if exc.errno in _CLOSED_ERRNOS:
                    return b""
                raise
            if not data:
                self._unpark()  # the peer has closed: no more waits on this fd
            self._drained = len(data) < READ_SIZE
            return data

    def _wait_readable(self) -> None:
        """Switch to the hub until the fd is readable (or the read is ended by a throw)."""
        hub = self._hub
        if hub is None:
            from eventlet.hubs import get_hub

            hub = self._hub = get_hub()
        listener = self._parked
        if listener is None or hub.listeners[hub.READ].get(listener.fileno) is not listener:
            # (Re)parked: one epoll_ctl. Raises eventlet's "Second simultaneous read" if
            # another green thread waits to read this fd, as trampoline() does.
            self._parked = listener = hub.add(hub.READ, self._raw.fileno(), self._readable,
                                              self._thrown_back, None)
        self._waiting = True
        try:
            hub.switch()
        finally:
            self._waiting = False
            if self._closed:
                self._unpark()

    def _readable(self, fileno: int) -> None:
        """The hub saw the fd readable (or in error): wake the waiting reader; with nobody
        waiting, leave the epoll set so that the hub does not spin on it."""
        if self._waiting:
            self._reader.switch()
        else:
            self._unpark()

    def _thrown_back(self, exc: BaseException) -> None:
        """The hub obsoleted the listener (the fd number reused): as eventlet does for a
        trampoline, the waiting read (if any) gets the exception."""
        self._parked = None
        if self._waiting:
            self._reader.throw(exc)

    def _unpark(self) -> None:
        """Drop the parked listener (one epoll_ctl), if it is still the hub's."""
        listener, self._parked = self._parked, None
        hub = self._hub
        if listener is not None and hub.listeners[hub.READ].get(listener.fileno) is listener:
            hub.remove(listener)

    def _arm(self, delay: float) -> None:
        from eventlet import hubs

        self._timer = hubs.get_hub().schedule_call_global(delay, self._check)

    def _check(self) -> None:
        """The timer fired: end the read that has waited ``_span``, or move the timer to when
        the read under way could first run out (none under way: the next read arms it)."""
        self._timer = None
        since, span = self._since, self._span
        if since is None or span is None:
            return
        waited = time.monotonic() - since
        if waited >= span:
            # What eventlet's own timeout does: raised in the read, which ends the websocket.
            self._reader.throw(TimeoutError("timed out"))
        else:
            self._arm(span - waited)

    def gettimeout(self) -> float | None:
        return self._span

    def settimeout(self, timeout: float | None) -> None:
        """The limit on one read's wait, and on a write's wait for room (python-engineio sets
        ping_interval + ping_timeout)."""
        self._span = timeout
        if self._raw is not None:
            self._sock.settimeout(timeout)

    def close(self) -> None:
        self._owner = None
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self._data = b""
        self._closed = True
        if not self._waiting:  # a waiting reader drops the listener as it wakes
            self._unpark()
        self._sock.close()

    def release(self) -> None:
        """The websocket's reads are over: drop the parked listener (unless a read waits)."""
        if not self._waiting:
            self._unpark()

    def sendall(self, data: bytes) -> None:
        """Write all of ``data``: one ``send`` when the socket takes it whole (the common
        case), else :meth:`_send_rest`, which waits for room and drops a client that reads
        nothing (``TimeoutError`` raised, as a failed write raises)."""
        raw = self._raw
        if raw is not None:  # inlined _send_now: every frame the writer writes comes here
            try:
                sent = raw.send(data)
            except BlockingIOError:
                sent = 0
        elif self._shut:
            self._sock.sendall(data)  # TLS after a stall: eventlet drops it (no TLS layer)
            return
        else:
            sent = self._send_now(data)[0]
        if sent < len(data):
            self._send_rest(data, sent)

    def _send_now(self, data: Any) -> tuple[int, bool]:
        """One non-blocking send of ``data`` (to the OS socket, or through the TLS layer
        without eventlet's waits): the count sent, and whether TLS must read first."""
        if self._raw is not None:
            try:
                return self._raw.send(data), False
            except BlockingIOError:
                return 0, False
        try:
            return self._tls_send(data), False
        except ssl.SSLWantWriteError:
            return 0, False
        except ssl.SSLWantReadError:
            return 0, True

    def _send_rest(self, data: bytes, sent: int) -> None:
        """Send ``data[sent:]``, waiting for room (at most the span each time) between
        non-blocking sends: a wait that ends without room while the kernel's send queue
        shrank is a slow reader's, waited for again; one in which the queue did not shrink
        is a client that reads nothing (``write_stall.SendWatch``): :meth:`_stalled`,
        ``TimeoutError`` raised. (eventlet's ``sendall`` loses the count sent when its wait
        times out, and its TLS ``send`` may write part of a record within a wait.)"""
        from eventlet.hubs import trampoline

        sock, span = self._sock, self._span
        target = self._raw if self._raw is not None else sock
        view = memoryview(data).cast("B")
        size, read_first = len(view), False
        while sent < size:
            watch = write_stall.SendWatch(sock)  # the buffer is full: a wait begins
            try:
                trampoline(target, read=read_first, write=not read_first, timeout=span,
                           timeout_exc=TimeoutError("timed out"))
            except TimeoutError:
                if watch.stalled():
                    self._stalled(span)
                    raise
            done, read_first = self._send_now(view[sent:])
            sent += done

    def _stalled(self, span: float | None) -> None:
        """A write found no room for ``span`` seconds: the client reads nothing. Log it (once)
        and shut the socket down: the websocket's reader, waiting or not, then reads its end
        and ends the session; every later write ends at once (it fails; under TLS eventlet
        drops it, the shutdown having let go of the TLS layer, as a connection deadline's
        does)."""
        owner, self._owner = self._owner, None
        self._shut = True
        if owner is not None:
            write_stall.log_dropped(owner.server.logger, owner.sid, span or 0.0)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already shut down or reset: ending anyway
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def plain_os_socket(sock: Any) -> Any:
    """The non-blocking OS socket under eventlet green socket ``sock`` (``GreenSocket.fd``)
    when it is a plain ``socket.socket``; None otherwise (TLS, or not a green socket)."""
    raw: Any = getattr(sock, "fd", None)
    for _ in range(3):  # a green socket may wrap another green socket (socketpair)
        inner = getattr(raw, "fd", None)
        if inner is None or isinstance(inner, int):
            break
        raw = inner
    kind = type(raw)
    if (kind.__module__, kind.__name__) != ("socket", "socket") or raw.gettimeout() != 0.0:
        return None
    return raw


def tls_send(sock: Any) -> Any:
    """The ``send`` of TLS socket ``sock`` that does not wait for room (bound to it): the
    stdlib's ``ssl.SSLSocket.send`` under eventlet's ``GreenSSLSocket`` (whose own waits for
    room; eventlet keeps the socket non-blocking, so the stdlib's raises SSLWantWriteError);
    ``sock.send`` itself when ``sock`` is not a green TLS socket."""
    for kind in type(sock).__mro__[1:]:
        if (kind.__module__, kind.__name__) == ("ssl", "SSLSocket"):
            return types.MethodType(kind.__dict__["send"], sock)
    return sock.send


def release(ws: Any) -> None:
    """The reads of eventlet websocket ``ws`` are over: its parked listener is dropped."""
    sock = getattr(ws, "socket", None)
    if isinstance(sock, BufferedReads):
        sock.release()


def buffer_reads(ws: Any, owner: Any = None) -> None:
    """Make the eventlet websocket ``ws`` read through :class:`BufferedReads` (once), for the
    session ``owner`` (whose id a stalled write's log line names)."""
    if not isinstance(ws.socket, BufferedReads):
        ws.socket = BufferedReads(ws.socket, owner)
