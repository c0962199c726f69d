"""The outgoing packet queue of one asyncio Engine.IO session, small while the session idles.

python-engineio gives every session an ``asyncio.Queue``: three deques and an ``asyncio.Event``
(a fourth deque) from the start, ~2.5 KiB per session before anything is queued (measured with
tracemalloc on the asyncio worker: ``asyncio/queues.py`` and ``asyncio/locks.py`` held ~5 KiB
of the ~41 KiB of an idle websocket, this queue being half of it). :class:`SessionQueue` keeps
what the session uses: a list of packets (read from a moving head, so taking one is O(1)), the
one waiting reader, and the event of ``join()`` only while someone joins. The calls python-
engineio and the async shell make are the ones of an unbounded ``asyncio.Queue``: ``put``,
``put_nowait``, ``get``, ``get_nowait``, ``task_done``, ``join``, ``qsize``, ``empty``.

It also advertises the exact ping interval in the OPEN packet, as
:class:`.ping_interval._ExactPingIntervalQueue` does for the other sessions' queues.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .core import eio_session
from .ping_interval import advertised_ping_interval

# Packets already taken are dropped from the list once they are this many and half of it.
COMPACT_AT = 32


class SessionQueue:
    """An unbounded FIFO of packets for asyncio tasks (see the module's docstring)."""

    __slots__ = ("_server", "_items", "_head", "_getters", "_unfinished", "_joined", "writer")

    maxsize = 0

    def __init__(self, server: Any) -> None:
        self._server = server
        self._items: list[Any] = []
        self._head = 0
        self._getters: list[asyncio.Future[None]] | None = None
        self._unfinished = 0
        self._joined: asyncio.Event | None = None
        # The websocket writer told of each put (async_websocket.AsyncLazyWriter), while the
        # session's websocket is served; None otherwise (polling, uvicorn's receive queue).
        self.writer: Any = None

    def qsize(self) -> int:
        """How many items are waiting."""
        return len(self._items) - self._head

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        return False

    def put_nowait(self, item: Any) -> None:
        """Queue ``item`` and wake the reader waiting in ``get()``, if any."""
        if eio_session.advertises_ping_interval(item):
            item.data["pingInterval"] = advertised_ping_interval(self._server)
        self._items.append(item)
        self._unfinished += 1
        if self._joined is not None:
            self._joined.clear()
        self._wake_getter()
        writer = self.writer
        if writer is not None:
            writer.queued()

    async def put(self, item: Any) -> None:
        """``put_nowait``: the queue is unbounded."""
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        """The oldest item; ``asyncio.QueueEmpty`` when there is none."""
        if self._head >= len(self._items):
            raise asyncio.QueueEmpty
        item = self._items[self._head]
        self._items[self._head] = None
        self._head += 1
        if self._head == len(self._items):
            self._items.clear()
            self._head = 0
        elif self._head >= COMPACT_AT and self._head * 2 >= len(self._items):
            del self._items[:self._head]
            self._head = 0
        return item

    def peek(self) -> Any:
        """The oldest item, left in the queue; ``asyncio.QueueEmpty`` when there is none."""
        if self._head >= len(self._items):
            raise asyncio.QueueEmpty
        return self._items[self._head]

    async def get(self) -> Any:
        """The oldest item, waiting for one (as ``asyncio.Queue.get``: a reader cancelled after
        it was woken passes the wake-up on)."""
        while self.empty():
            getter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if self._getters is not None and getter in self._getters:
                    self._getters.remove(getter)
                if not self.empty() and not getter.cancelled():
                    self._wake_getter()
                raise
        return self.get_nowait()

    def task_done(self) -> None:
        """One item taken has been dealt with (``ValueError`` when none is outstanding)."""
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joined is not None:
            self._joined.set()

    async def join(self) -> None:
        """Wait until every item queued has been taken and dealt with."""
        if self._unfinished > 0:
            if self._joined is None:
                self._joined = asyncio.Event()
            await self._joined.wait()

    def _wake_getter(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                break
        if not getters:
            self._getters = None  # an idle session holds no list
