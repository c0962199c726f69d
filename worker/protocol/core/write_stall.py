"""The rule for a client that stops reading what its worker writes to it, for both engines:
a write that makes no progress for ``ping_interval + ping_timeout`` drops the connection
(the worker's writes to it would otherwise wait for ever, its session's queue growing,
counted against the connection limit, a drain waiting for it); a slow client whose reads make
progress, however slowly, is waited for. Progress is seen in the kernel's send queue
(:func:`kernel_unsent`), not only in a writer woken for room: Linux wakes a writer only once a
good part of its send buffer is free (1 MB of the 4 MB it grows to on loopback), which a
client reading a few KB at a time may take many spans to free. How the waits are watched is
the engine's: the asyncio writer watches the transport's write buffer and the kernel's queue
(``async_websocket._writable``); eventlet's green socket times out a send that finds no room
for a span and :class:`SendWatch` looks at the queue (``ws_reads.BufferedReads.sendall``). The
same holds for every HTTP response the worker writes (a long-polling GET, an app's download,
the gateway's answers), with the largest span of the app's Engine.IO servers
(:func:`app_span`): eventlet's ``connection.StallLimitedWrites``, asyncio's
``aio/write_stall.WriteStallMixin``."""

from __future__ import annotations

import fcntl
import struct
import termios
from collections.abc import Iterable
from typing import Any

# What a dropped connection's log line says (the session's id, the span in seconds).
DROPPED = "%s: the client read nothing for %gs, dropping the connection"


def stall_span(ping_interval: float, ping_timeout: float) -> float:
    """How long a write may make no progress before its connection is dropped (seconds): a
    client that answers pings reads at least that often."""
    return ping_interval + ping_timeout


def log_dropped(logger: Any, who: str, span: float) -> None:
    """Say once, at INFO on ``logger``, that the connection of ``who`` (a session's id, or
    :func:`http_client`'s name) is dropped because its client read nothing for ``span``
    seconds."""
    logger.info(DROPPED, who, span)


# The span when the app has no Engine.IO server to take it from: python-engineio's defaults
# (ping_interval 25 s, ping_timeout 20 s).
DEFAULT_SPAN = 45.0


def app_span(engines: Iterable[Any]) -> float:
    """The span for every HTTP write of a worker serving ``engines`` (the app's Engine.IO
    servers): the largest of theirs, so that no session's own rule is made stricter;
    :data:`DEFAULT_SPAN` when there are none."""
    spans = [stall_span(eio.ping_interval, eio.ping_timeout) for eio in engines]
    return max(spans, default=DEFAULT_SPAN)


def progressed(before: int, now: int) -> bool:
    """Whether a write buffer holding ``before`` bytes a span ago and ``now`` bytes now was
    read from: a slow reader, not a silent one, and the wait starts again."""
    return now < before


class SendWatch:
    """One wait of a write for room in ``sock``'s send buffer, judged by the kernel's send
    queue (:func:`kernel_unsent`): a wait that ends without room is a stall only when the queue
    did not shrink since it began. ``begun``: the wait begins now (the queue is looked at
    here); False when the caller cannot tell (eventlet's green ``send`` waits inside: its first
    timed-out wait is then only looked at, and a client that reads nothing is seen within two
    spans)."""

    __slots__ = ("_sock", "_unsent")

    def __init__(self, sock: Any, begun: bool = True) -> None:
        self._sock = sock
        self._unsent = kernel_unsent(sock) if begun else -1  # -1: not looked at yet

    def stalled(self) -> bool:
        """A wait ended without room: True when the client read nothing since it began (the
        caller drops the connection); False when it is waited for again (a slow reader, whose
        reads shrink the queue but are too small to wake the writer), this look the next
        wait's start."""
        before = self._unsent
        self._unsent = now = kernel_unsent(self._sock)
        return before >= 0 and not progressed(before, now)


def kernel_unsent(sock: Any) -> int:
    """The bytes in ``sock``'s kernel send queue that the client has not acknowledged yet
    (Linux's SIOCOUTQ); 0 where that is unknown.

    A writer waiting for room does not see a slow reader's progress: the kernel wakes it only
    once a good part of its send buffer (which grows to megabytes; about 1 MB of 4 MB on
    loopback) is free, which a client reading a few KB at a time takes longer than a span to
    free. The queue shrinks with each read."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError, AttributeError):  # closed, not a TCP socket, not Linux
        return 0
    return int(struct.unpack("i", raw)[0])


def http_client(method: str, path: str, address: str) -> str:
    """How a dropped HTTP connection's log line names it (the query string left out: it may
    carry a session's id or a signed token)."""
    return f"{method} {path} from {address}"


def transport_unsent(transport: Any) -> int:
    """What an asyncio ``transport`` has left to get to its client: its own buffer and its
    socket's kernel send queue (:func:`kernel_unsent`: the transport's buffer shrinks only when
    the kernel has a good part of its buffer free, which a slow reader's reads may take
    longer than a span to free)."""
    return int(transport.get_write_buffer_size()) + kernel_unsent(
        transport.get_extra_info("socket"))
