"""A client that does not read an HTTP response (asyncio engine): the websocket's rule
(worker/protocol/core/write_stall.py) on uvicorn's HTTP protocol.

uvicorn writes a response into the transport's buffer whatever its size (an Engine.IO long-poll
GET's payload, an app's download) and, once the buffer is over its high-water mark, waits in
``flow.drain()`` before the next write, without a time limit; a response written in one piece
waits for nothing, and the transport then holds it for as long as the client does not read it
(a close waits to flush it). Either way the connection stayed open and counted against the
worker's connection limit, a drain waiting for it. :class:`WriteStallMixin` watches the buffer
while the transport has paused the protocol's writing: when it has not shrunk for the span
(the app's largest ``ping_interval + ping_timeout``), the transport is aborted (which ends a
drain's wait: uvicorn's ``connection_lost`` resumes the flow) and the drop logged once. A slow
reader's buffer (the transport's and the kernel's send queue) shrinks between two looks: it is
waited for.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sioctl.worker.protocol.core import write_stall


class WriteStallMixin:
    """Put before uvicorn's HTTP protocol class (:func:`with_write_stall`): a transport whose
    write buffer stays over the high-water mark without shrinking for ``write_span`` seconds
    is aborted."""

    write_span: float = 0.0
    stall_logger: logging.Logger = logging.getLogger("sioctl.worker")
    # The typed view of what the protocol class provides (uvicorn's HttpToolsProtocol).
    transport: asyncio.Transport
    client: Any
    cycle: Any
    _stall_timer: asyncio.TimerHandle | None = None
    _stall_left = 0  # the buffer's size at the last look

    def pause_writing(self) -> None:
        super().pause_writing()  # type: ignore[misc]
        if self.write_span > 0 and self._stall_timer is None:
            self._stall_left = self._unsent()
            self._stall_timer = asyncio.get_running_loop().call_later(
                self.write_span, self._stall_check)

    def resume_writing(self) -> None:
        self._cancel_stall_timer()
        super().resume_writing()  # type: ignore[misc]

    def _stall_check(self) -> None:
        """A span after the buffer was last seen: shrunk (look again a span later), or not
        (abort). A transport handed to the websocket protocol is its writer's
        (``async_websocket._writable``)."""
        self._stall_timer = None
        transport = self.transport
        if transport.get_protocol() is not self:
            return
        now = self._unsent()
        if write_stall.progressed(self._stall_left, now):
            self._stall_left = now
            self._stall_timer = asyncio.get_running_loop().call_later(
                self.write_span, self._stall_check)
            return
        write_stall.log_dropped(self.stall_logger, self._stall_name(), self.write_span)
        transport.abort()

    def _unsent(self) -> int:
        """What is left to reach the client (write_stall.transport_unsent: the kernel's queue
        counted, which shrinks with each read of a slow client)."""
        return write_stall.transport_unsent(self.transport)

    def _stall_name(self) -> str:
        """The dropped connection as its log line names it (its request's method and path)."""
        scope = getattr(self.cycle, "scope", None) or {}
        client = self.client[0] if self.client else "-"
        return write_stall.http_client(str(scope.get("method", "-")),
                                       str(scope.get("path", "-")), str(client))

    def _cancel_stall_timer(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_stall_timer()
        super().connection_lost(exc)  # type: ignore[misc]


def with_write_stall(protocol_class: type, write_span: float, logger: logging.Logger) -> type:
    """``protocol_class`` (uvicorn's HTTP protocol) with :class:`WriteStallMixin`, this
    ``write_span`` in seconds (0: no limit) and the ``logger`` its drops are logged on."""
    return type(f"WriteStall{protocol_class.__name__}", (WriteStallMixin, protocol_class),
                {"write_span": write_span, "stall_logger": logger})
