"""A publisher's batch on the wire: the commands packed into one buffer, and Redis's answers
cut out of the bytes read back. Engine-free: the shells (:mod:`.publisher`,
:mod:`.async_publisher`) write and read.

redis-py's pipeline builds a command stack, packs it through its serializer, runs it under its
retry wrapper and parses each answer through its RESP3 parser and response callbacks: in the
targeted benchmark (docs/benchmarks-optimizations.md, issue 19) that was the publisher's
whole cost, an eighth of the sending worker's CPU, for batches of PUBLISH answered by an
integer each. The publisher still lets redis-py open its connection (TLS, AUTH, ``HELLO``,
Sentinel and Unix sockets stay the pool's connection class's business), and then writes what
:func:`pack` makes and reads what :class:`ReplyParser` cuts out.

What the publisher looks at in an answer (``Outbox.sent``) is PUBLISH's receiver count (an
int) and whether a guarded XADD answered nil (None); an error answer becomes a
``redis.ResponseError`` in its place, as ``pipeline.execute(raise_on_error=False)`` gave.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

_CRLF = b"\r\n"


def _encoded(arg: Any) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, int):
        return b"%d" % arg
    if isinstance(arg, float):
        return repr(arg).encode()
    raise redis.DataError(f"invalid argument for a Redis command: {type(arg).__name__}")


def pack(commands: Iterable[tuple[Any, ...]]) -> bytes:
    """The RESP bytes of ``commands`` (each a tuple of str, bytes, int or float), in order."""
    parts: list[bytes] = []
    add = parts.append
    for args in commands:
        add(b"*%d\r\n" % len(args))
        for arg in args:
            value = _encoded(arg)
            add(b"$%d\r\n" % len(value))
            add(value)
            add(_CRLF)
    return b"".join(parts)


# What _value answers for an answer not complete yet.
_MORE = object()
_AGGREGATES = {0x2A: 1, 0x3E: 1, 0x7E: 1, 0x25: 2}  # '*', '>', '~': n items; '%': n pairs


def _value(buf: bytes, pos: int) -> tuple[Any, int]:
    """(the answer at ``pos``, where the next starts); (``_MORE``, how far the buffer must
    reach at least) when it is incomplete."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        return _MORE, len(buf) + 1
    kind, head = buf[pos], buf[pos + 1:end]
    if kind == 0x3A:  # ':'
        return int(head), end + 2
    if kind in (0x24, 0x3D, 0x21):  # '$' bulk, '=' verbatim, '!' bulk error
        length = int(head)
        if length < 0:
            return None, end + 2
        stop = end + 2 + length
        if stop + 2 > len(buf):
            return _MORE, stop + 2
        data = buf[end + 2:stop]
        if kind == 0x21:
            return redis.ResponseError(data.decode(errors="replace")), stop + 2
        return data, stop + 2
    if kind == 0x2B:  # '+'
        return head, end + 2
    if kind == 0x2D:  # '-'
        return redis.ResponseError(head.decode(errors="replace")), end + 2
    if kind == 0x5F:  # '_' RESP3 null
        return None, end + 2
    if kind == 0x2C:  # ',' double
        return float(head), end + 2
    if kind == 0x23:  # '#' boolean
        return head == b"t", end + 2
    if kind == 0x28:  # '(' big number
        return int(head), end + 2
    if kind in _AGGREGATES:
        count = int(head)
        if count < 0:
            return None, end + 2
        items = []
        at = end + 2
        for _ in range(count * _AGGREGATES[kind]):
            item, at = _value(buf, at)
            if item is _MORE:
                return _MORE, at
            items.append(item)
        return items, at
    raise redis.ConnectionError(f"unexpected bytes from Redis: {buf[pos:end][:40]!r}")


class ReplyParser:
    """Cuts the answers to a batch out of the bytes read back, however the reads cut them."""

    def __init__(self) -> None:
        self._rest = bytearray()
        self._need = 0

    def feed(self, data: bytes) -> list[Any]:
        """The answers complete in what was read so far, in order."""
        if self._rest:
            self._rest += data
            if len(self._rest) < self._need:
                return []
            buf = bytes(self._rest)
        else:
            buf = data
        out: list[Any] = []
        pos, size = 0, len(buf)
        while pos < size:
            value, at = _value(buf, pos)
            if value is _MORE:
                self._need = at - pos
                break
            out.append(value)
            pos = at
        self._rest = bytearray(buf[pos:]) if pos < size else bytearray()
        return out


class BatchAnswers:
    """The answers to one batch of ``count`` commands, as the shell's reads bring them."""

    def __init__(self, count: int, where: str = "Redis") -> None:
        self.count = count
        self.where = where
        self.values: list[Any] = []
        self._replies = ReplyParser()

    def feed(self, data: bytes) -> bool:
        """Take what one read returned; True once every answer is in. Raises ConnectionError
        when Redis closed the connection (``data`` empty) or answered more than was asked
        (the connection is out of step: it is dropped and the batch sent again)."""
        if not data:
            raise redis.ConnectionError(f"{self.where} closed the publisher's connection")
        self.values += self._replies.feed(data)
        if len(self.values) > self.count:
            raise redis.ConnectionError("Redis answered more than the publisher asked")
        return len(self.values) == self.count
