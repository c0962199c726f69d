"""Make engine.io advertise the ping interval that is configured, fractions included (shell;
the value and the test for the OPEN packet are :mod:`.core.eio_session`'s)."""

from __future__ import annotations

from typing import Any

import engineio

from .core import eio_session


class _ExactPingIntervalQueue:
    """A session's outgoing queue that rewrites the OPEN packet's ``pingInterval``.

    python-engineio builds the OPEN packet with ``int(ping_interval + grace) * 1000``, which
    truncates before scaling: 0.3 s is advertised as 0 ms and JS clients then drop with
    "ping timeout". The OPEN packet is the first thing queued on a new session, so fixing it
    here changes nothing else about the server. Everything but ``put`` goes to the real queue.

    It also starts the writer of a websocket session (``websocket_serve.LazyWriter``) when
    something is put on the queue: eventlet sessions have no writer green thread waiting on it.
    """

    # The websocket writer to tell of each put, while the session's websocket is served by
    # websocket_serve.serve_websocket; None otherwise.
    writer: Any = None

    def __init__(self, queue: Any, server: engineio.Server) -> None:
        self._queue = queue
        self._server = server

    def put(self, item: Any, *args: Any, **kwargs: Any) -> Any:
        if eio_session.advertises_ping_interval(item):
            item.data["pingInterval"] = advertised_ping_interval(self._server)
        self._queue.put(item, *args, **kwargs)
        writer = self.writer
        if writer is not None:
            writer.queued()

    # What every send and every write of a websocket session calls, delegated explicitly: the
    # __getattr__ below is reached only after a failed lookup, ~1 µs a call (issue 19: a
    # broadcast asks each recipient's qsize()).
    def qsize(self) -> int:
        return int(self._queue.qsize())

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._queue.get(*args, **kwargs)

    def task_done(self) -> None:
        self._queue.task_done()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


class ExactPingIntervalMixin:
    """engineio.Server mixin whose sessions advertise round(interval * 1000) ms."""

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        queue = super().create_queue(*args, **kwargs)  # type: ignore[misc]
        return _ExactPingIntervalQueue(queue, self)


def advertised_ping_interval(server: engineio.Server) -> int:
    """The ping interval in whole milliseconds, as configured (grace period included)."""
    return eio_session.advertised_ping_interval(
        server.ping_interval, server.ping_interval_grace_period)
