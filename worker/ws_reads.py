"""Websocket reads on eventlet: one ``recv`` per burst of frames, no timer per read.

eventlet's ``RFC6455WebSocket`` reads a frame in three or four ``recv`` calls on its green
socket (the 2-byte header, the mask, the payload, an extended length between), and
python-engineio gives that socket a timeout (``ping_interval + ping_timeout``), so the read that
waits for the next frame also schedules and cancels a hub timer. Under an echo load that was a
sixth of a worker's CPU (docs/benchmarks-optimizations.md, "Echo and fixed costs").
:class:`BufferedReads` takes the socket's place in the websocket: ``recv(n)`` is served from
what one ``recv(READ_SIZE)`` brought, and the time limit is kept by one hub timer per
websocket, moved only when it fires. Everything else is the green socket's.

Importing this module does not import eventlet (the protocol shells import it on both engines);
the hub is looked up when a read first waits.
"""

from __future__ import annotations

import time
from typing import Any

# The most one recv() brings. A 16 KiB message (and its frame header) arrives in one read; a
# burst of small frames is read at once. Freed as soon as it has been read (an idle websocket
# holds no buffer).
READ_SIZE = 64 * 1024


class BufferedReads:
    """The socket a websocket reads from, with its reads buffered (see the module)."""

    __slots__ = ("_sock", "_data", "_pos", "_span", "_since", "_reader", "_timer")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0
        self._span: float | None = sock.gettimeout()
        self._since: float | None = None  # when the read under way began waiting
        self._reader: Any = None  # the greenlet waiting in that read
        self._timer: Any = None  # the hub timer that ends a read waiting past _span
        sock.settimeout(None)  # the waiting read trampolines without a timer of its own

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
            return self._sock.recv(READ_SIZE)
        finally:
            self._since = self._reader = None

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
        """The limit on one read's wait (python-engineio sets ping_interval + ping_timeout)."""
        self._span = timeout

    def close(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self._data = b""
        self._sock.close()

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def buffer_reads(ws: Any) -> None:
    """Make the eventlet websocket ``ws`` read through :class:`BufferedReads` (once)."""
    if not isinstance(ws.socket, BufferedReads):
        ws.socket = BufferedReads(ws.socket)
