"""The header deadline of later requests on a kept-alive connection (asyncio engine).

uvicorn bounds only the idle time between two requests (``timeout_keep_alive``, sioctl's
``--keepalive``), and any byte received cancels that timer: a client that starts its next
request and then trickles the head, a header line now and then, holds the connection forever.
The eventlet worker gives every later request ``--header-timeout`` seconds from its first byte
to complete its head (worker/connection.py); :class:`HeadDeadlineMixin` does the same on
uvicorn's HTTP protocol. The first request's deadline, which counts from the arrival and
includes a TLS handshake, is :meth:`Serving._check_head`'s (serving.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger("sioctl.worker")


class HeadDeadlineMixin:
    """Put before uvicorn's HTTP protocol class (:func:`with_head_deadline`): once a response
    is complete, the first byte of the next request starts a ``header_timeout`` deadline, which
    the completion of its head lifts; past it, the connection is closed."""

    header_timeout: float = 0.0
    # The typed view of what the protocol class provides (uvicorn's HttpToolsProtocol).
    cycle: Any
    transport: asyncio.Transport
    _head_timer: asyncio.TimerHandle | None = None
    # The completed cycle the pending deadline was started after.
    _head_after: Any = None

    def data_received(self, data: bytes) -> None:
        waiting = self.cycle
        starts = (self._head_timer is None and self.header_timeout > 0 and waiting is not None
                  and waiting.response_complete)
        super().data_received(data)  # type: ignore[misc]
        if starts and self._waiting_for_head(waiting):
            loop = asyncio.get_running_loop()
            self._head_after = waiting
            self._head_timer = loop.call_later(self.header_timeout, self._head_overdue)
        elif self._head_timer is not None and not self._waiting_for_head(self._head_after):
            self._cancel_head_timer()  # the head is complete (or the connection upgraded)

    def _waiting_for_head(self, previous: Any) -> bool:
        """Still on this connection, with no request head completed since ``previous``."""
        return (self.cycle is previous and not self.transport.is_closing()
                # A websocket upgrade hands the transport to the websocket protocol.
                and self.transport.get_protocol() is self)

    def _head_overdue(self) -> None:
        previous, self._head_timer, self._head_after = self._head_after, None, None
        if self._waiting_for_head(previous):
            logger.debug("closed a kept-alive connection: no complete request head in time")
            self.transport.close()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self._head_after = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)  # type: ignore[misc]


def with_head_deadline(protocol_class: type, header_timeout: float) -> type:
    """``protocol_class`` (uvicorn's HTTP protocol) with :class:`HeadDeadlineMixin` and this
    ``header_timeout`` in seconds (0: no deadline for later requests)."""
    return type(f"HeadDeadline{protocol_class.__name__}", (HeadDeadlineMixin, protocol_class),
                {"header_timeout": header_timeout})
