"""The rule for a client that stops reading what its worker writes to it, for both engines:
a write that makes no progress for ``ping_interval + ping_timeout`` drops the connection
(the worker's writes to it would otherwise wait for ever, its session's queue growing,
counted against the connection limit, a drain waiting for it); a slow client whose reads make
progress, however slowly, is waited for. How "no progress" is seen is the engine's: the
asyncio writer watches the transport's write buffer (``async_websocket._writable``), eventlet's
green socket times out a send that finds no room for that long (``ws_reads.BufferedReads.
sendall``)."""

from __future__ import annotations

from typing import Any

# What a dropped connection's log line says (the session's id, the span in seconds).
DROPPED = "%s: the client read nothing for %gs, dropping the connection"


def stall_span(ping_interval: float, ping_timeout: float) -> float:
    """How long a write may make no progress before its connection is dropped (seconds): a
    client that answers pings reads at least that often."""
    return ping_interval + ping_timeout


def log_dropped(logger: Any, sid: str, span: float) -> None:
    """Say once, at INFO on the server's logger, that session ``sid``'s connection is dropped
    because its client read nothing for ``span`` seconds."""
    logger.info(DROPPED, sid, span)
