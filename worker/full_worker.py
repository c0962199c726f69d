"""What a worker does when all its ``--worker-connections`` are in use, shared by both engines
(worker/http_server.py on eventlet, worker/aio/serving.py on asyncio).

A new connection first closes the connection that has waited longest for a request (idle and
slow clients never lock real ones out); when none is waiting, the new one is refused with a 503
and Retry-After, counted as ``refused`` (the heartbeat reports it). Both are logged once, then as
a count at most every LOG_INTERVAL. Engine-free: the constants, the answer and the log lines.
"""

from __future__ import annotations

import logging
import time

# What a client of a full worker is told, and how long it is told to wait.
RETRY_AFTER = 5
REFUSAL_BODY = b"The server is serving all the connections it can; retry later.\n"
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
    % (RETRY_AFTER, len(REFUSAL_BODY), REFUSAL_BODY)
)
# A refused connection gets this long to take its 503 (what it sent meanwhile is read and
# dropped, so closing does not reset the connection before the client has read the answer).
REFUSAL_LINGER = 1.0
REFUSAL_LINGER_BYTES = 64 * 1024
# Refusals answered at once; past this (a flood) refused connections are just closed.
MAX_ANSWERING = 512
LOG_INTERVAL = 10.0
# Waiting connections looked at, oldest first, for one to close when the worker is full.
MAKE_ROOM_CANDIDATES = 64


def refusals_log(logger: logging.Logger, capacity: int) -> Occurrences:
    """The log of refusals (503) of a worker of ``capacity`` connections."""
    return Occurrences(
        logger,
        f"refusing connections with 503: all {capacity} worker connections are busy, "
        "none idle (--worker-connections; counted as refused in status and metrics)",
        "refused %d more connections with 503 in the last %.0fs (worker full)")


def make_room_log(logger: logging.Logger, capacity: int) -> Occurrences:
    """The log of idle connections closed to make room in a worker of ``capacity``."""
    return Occurrences(
        logger,
        f"all {capacity} worker connections in use: closing the longest idle one for "
        "each new connection (--worker-connections)",
        "closed %d more idle connections to make room in the last %.0fs")


class Occurrences:
    """Logs the first occurrence of something in full, then a count at most every LOG_INTERVAL
    (only when it happens again), so a flood costs a line every few seconds."""

    def __init__(self, logger: logging.Logger, first: str, later: str) -> None:
        self._logger = logger
        self._first = first
        self._later = later  # formatted with (count, seconds)
        self._logged_at: float | None = None
        self._unlogged = 0

    def note(self) -> None:
        now = time.monotonic()
        self._unlogged += 1
        if self._logged_at is None:
            self._logger.warning("%s (logged again at most every %gs)", self._first, LOG_INTERVAL)
        elif now - self._logged_at >= LOG_INTERVAL:
            self._logger.warning(self._later, self._unlogged, now - self._logged_at)
        else:
            return
        self._logged_at = now
        self._unlogged = 0
