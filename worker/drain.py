"""Graceful drain: refuse new engine.io sessions, close the open ones, wait for the connections."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import engineio
import eventlet

from sioctl.worker.gate import DrainGate
from sioctl.worker.http_server import HttpServer

POLL_INTERVAL = 0.1


def close_sessions(eio: engineio.Server) -> int:
    """Close the transport of every engine.io session at once; returns how many there were.

    Closing the transport (not a socket.io disconnect, which sends CLOSE) makes python and JS
    clients reconnect. Each session is closed in its own green thread: eio.disconnect() closes
    them one by one and hangs on a polling client that never comes back.
    """
    sessions = list(eio.sockets.values())
    pool = eventlet.GreenPool(max(1, len(sessions)))
    for session in sessions:
        pool.spawn(_close_transport, eio, session)
    pool.waitall()
    return len(sessions)


def _close_transport(eio: engineio.Server, session: Any) -> None:
    try:
        # abort=True: send no CLOSE packet, just end the transport (polling gets an empty
        # response, a websocket is closed), so the client treats it as a lost connection.
        session.close(wait=False, abort=True, reason=eio.reason.TRANSPORT_CLOSE)
    except Exception:
        logging.getLogger(__name__).debug("closing session %s failed", session.sid, exc_info=True)
    eio.sockets.pop(session.sid, None)


def drain(
    gate: DrainGate,
    engines: Sequence[engineio.Server],
    http: HttpServer,
    graceful_timeout: float,
    logger: logging.Logger,
    manager: Any = None,
) -> bool:
    """Drain the worker (the sessions of every engine.io server in ``engines``); returns True
    when all connections ended before the timeout. ``manager``: the server's client manager,
    whose queued Redis commands (the session records the closed sockets' disconnects wrote,
    with connection state recovery) are given the rest of the timeout to go out.

    The caller enforces the hard deadline too (this may block on a stuck session close).
    """
    deadline = time.monotonic() + max(0.0, graceful_timeout)
    gate.draining = True
    http.stop_keepalive()
    logger.info(
        "draining: %d sessions, %d connections, graceful timeout %gs",
        sum(len(eio.sockets) for eio in engines),
        http.open_connections(),
        graceful_timeout,
    )
    for eio in engines:
        close_sessions(eio)
    # Connections waiting for their next request would otherwise stay open until the client
    # closes them; busy ones end after their current response (keep-alive is off now).
    http.close_idle()
    while http.open_connections() and time.monotonic() < deadline:
        eventlet.sleep(POLL_INTERVAL)
    left = http.open_connections()
    if left:
        logger.warning("drain timed out with %d connections open; exiting", left)
    else:
        logger.info("drained: no connections left; exiting")
    flush_publisher(manager, deadline, logger)
    return not left


def flush_publisher(manager: Any, deadline: float, logger: logging.Logger) -> None:
    """Wait (until ``deadline``, monotonic) for what ``manager``'s Redis publisher still
    queues: the worker exits at once after the drain, and a session record a recoverable
    disconnect queued must reach Redis for the client to come back with its state (the
    asyncio worker's ``leave_workers`` does the same)."""
    queue = getattr(getattr(manager, "publisher", None), "queue", None)
    if queue is None:
        return
    while queue and time.monotonic() < deadline:
        eventlet.sleep(0.01)
    if queue:
        logger.warning("exiting with %d Redis commands not sent", len(queue))
