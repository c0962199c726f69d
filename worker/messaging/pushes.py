"""A pub/sub subscription read straight off its connection: every complete push in the bytes
one read returned, parsed at once. Engine-free: the shells (:mod:`.listener`,
:mod:`.async_readers`) do the reads and the writes.

redis-py's ``PubSub.get_message`` parses one message per call through some fifteen layers
(``_execute``, ``Retry``, ``can_read``, the RESP3 push handlers...): a fifth of the receiving
worker's CPU in the targeted benchmark (docs/benchmarks-optimizations.md, issue 19). The
listener still lets redis-py open the connection — so TLS, AUTH, ``HELLO``, Sentinel and Unix
sockets are the pool's connection class's business — and send ``SUBSCRIBE``; from then on it
reads the raw bytes and cuts out every push here (:class:`PushParser`). Nothing but the
subscription's confirmations, its messages and the answers to its own PINGs ever comes on
that connection, so the parser knows only those shapes (RESP2 and RESP3).

A silent connection (a network that drops packets without a reset) is noticed as redis-py's
health checks noticed it: after ``HEALTH_EVERY`` s without a byte the reader sends a PING, and
a connection that stays silent ``PONG_WAIT`` s more is dropped (:class:`Liveness`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# Bytes asked for per read: many pushes per wakeup under load.
READ_SIZE = 256 * 1024
# Silence before a PING (unless the client has a health_check_interval of its own: 10 s in
# client_options), and then before the connection counts as dead.
HEALTH_EVERY = 10.0
PONG_WAIT = 5.0

_CRLF = b"\r\n"


class PushError(ConnectionError):
    """Redis sent an error, or bytes that are no pub/sub push: the connection is dropped (and
    the reader subscribes again)."""


class PushParser:
    """Cuts the pushes of a subscribed connection out of the bytes read from it.

    ``feed`` returns the (channel, data) of every message complete so far; an incomplete push
    waits for the next ``feed``. ``subscribed`` counts the SUBSCRIBE confirmations, ``pongs``
    the answers to PINGs."""

    def __init__(self) -> None:
        # The bytes of an incomplete push, and how many it needs at least before it can be
        # parsed (a large message arrives in many reads: it is not re-parsed on each).
        self._rest = bytearray()
        self._need = 0
        self.subscribed = 0
        self.pongs = 0

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        """The messages complete in what was read so far, in order."""
        if self._rest:
            self._rest += data
            if len(self._rest) < self._need:
                return []
            buf = bytes(self._rest)
        else:
            buf = data
        out: list[tuple[str, bytes]] = []
        pos, size = 0, len(buf)
        while pos < size:
            items, at = _frame(buf, pos)
            if items is None:
                self._need = at - pos
                break
            pos = at
            self._take(items, out)
        self._rest = bytearray(buf[pos:]) if pos < size else bytearray()
        return out

    def _take(self, items: list[Any], out: list[tuple[str, bytes]]) -> None:
        kind = items[0] if items else None
        if kind == b"message" and len(items) == 3:
            out.append((items[1].decode(), items[2]))
        elif kind == b"pmessage" and len(items) == 4:
            out.append((items[2].decode(), items[3]))
        elif kind in (b"pong", b"PONG"):
            self.pongs += 1
        elif kind == b"subscribe":
            self.subscribed += 1
        # unsubscribe and anything else harmless: ignored


def _frame(buf: bytes, pos: int) -> tuple[list[Any] | None, int]:
    """(the items of the push at ``pos``, where the next one starts); (None, how far the
    buffer must reach at least) when it is incomplete."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        return None, len(buf) + 1
    kind = buf[pos]
    if kind in (0x3E, 0x2A):  # '>' (RESP3 push), '*' (RESP2 array)
        items: list[Any] = []
        at = end + 2
        for _ in range(int(buf[pos + 1:end])):
            value, at = _item(buf, at)
            if value is _MORE:
                return None, at
            items.append(value)
        return items, at
    if kind == 0x2B:  # '+': a simple string (RESP3's answer to PING)
        return [buf[pos + 1:end]], end + 2
    if kind == 0x2D:  # '-'
        raise PushError(buf[pos + 1:end].decode(errors="replace"))
    raise PushError(f"unexpected reply on a subscribed connection: {buf[pos:end][:40]!r}")


# What _item answers for an element not complete yet.
_MORE = object()


def _item(buf: bytes, pos: int) -> tuple[Any, int]:
    """(one element of a push at ``pos``, where the next starts); (``_MORE``, how far the
    buffer must reach at least) when it is incomplete."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        return _MORE, len(buf) + 1
    kind = buf[pos]
    if kind == 0x24:  # '$': a bulk string
        length = int(buf[pos + 1:end])
        if length < 0:
            return None, end + 2
        start = end + 2
        stop = start + length
        if stop + 2 > len(buf):
            return _MORE, stop + 2
        return buf[start:stop], stop + 2
    if kind == 0x3A:  # ':': an integer (a subscription count)
        return int(buf[pos + 1:end]), end + 2
    if kind == 0x2B:  # '+'
        return buf[pos + 1:end], end + 2
    raise PushError(f"unexpected element in a push: {buf[pos:end][:40]!r}")


class Liveness:
    """When a quiet subscribed connection gets a PING, and when it counts as dead."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 every: float = HEALTH_EVERY, wait: float = PONG_WAIT) -> None:
        self._clock = clock
        self.every = every
        self.wait = wait
        self._heard = clock()
        self._pinged: float | None = None

    def heard(self) -> None:
        """Bytes came in: the connection is alive."""
        self._heard = self._clock()
        self._pinged = None

    def quiet(self) -> bool:
        """A read timed out: True when a PING is due now (send it); raises ConnectionError when
        the PING sent earlier went unanswered for ``wait`` s."""
        now = self._clock()
        if self._pinged is not None:
            if now - self._pinged >= self.wait:
                raise ConnectionError(f"no answer from Redis for {now - self._heard:.0f}s "
                                      "on the subscribed connection")
            return False
        if now - self._heard >= self.every:
            self._pinged = now
            return True
        return False


def address(conn: Any) -> str:
    """Where redis-py connection ``conn`` goes (``host:port``, or a Unix socket's path), for
    the logs: after a Sentinel failover they show which master was dialled."""
    path = getattr(conn, "path", None)
    return str(path) if path else f"{getattr(conn, 'host', '?')}:{getattr(conn, 'port', '?')}"


def read_failed(conn: Any, exc: OSError) -> ConnectionError:
    """The error a failed read on ``conn`` becomes (worded as redis-py words it)."""
    return ConnectionError(f"Error while reading from {address(conn)} : {exc}")


class Subscription:
    """A subscribed connection (redis-py's, blocking or asyncio) with its parser and its
    liveness: what a listener shell keeps between reads."""

    def __init__(self, client: Any, conn: Any, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.client = client
        self.conn = conn
        self.parser = PushParser()
        # The client's health_check_interval (``redis_options`` may change it), as redis-py's
        # PubSub used it.
        every = getattr(conn, "health_check_interval", 0)
        self.liveness = Liveness(clock, every=every if isinstance(every, (int, float))
                                 and every > 0 else HEALTH_EVERY)

    def received(self, data: bytes) -> list[tuple[str, bytes]]:
        """The messages in ``data``, just read (b"": Redis closed the connection)."""
        if not data:
            raise ConnectionError(f"Redis at {address(self.conn)} closed the subscribed "
                                  "connection")
        self.liveness.heard()
        return self.parser.feed(data)

    def close(self) -> None:
        """Close the connection and its client (blocking redis-py; errors ignored)."""
        for close in (self.conn.disconnect, self.client.close):
            try:
                close()
            except Exception:
                pass

    async def aclose(self) -> None:
        """Close the connection and its client (redis.asyncio; errors ignored)."""
        for close in (self.conn.disconnect, self.client.aclose):
            try:
                await close()
            except Exception:
                pass

    def ping_command(self) -> bytes:
        """The bytes of a PING (sent by the shell when ``liveness.quiet()`` says so)."""
        return b"*1\r\n$4\r\nPING\r\n"
