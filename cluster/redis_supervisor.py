"""Keeping the embedded redis-server alive: notice that it died, start it again, say so.

The master calls :meth:`RedisSupervisor.check` when SIGCHLD reaches its loop (redis-server may
have died) and when :meth:`RedisSupervisor.next_check` says a restart or a PING is due. A dead
server is started again on the same Unix socket with the same settings, at once the first time
and with a growing delay when it keeps dying soon after its start (the rules of :mod:`policy`,
as for workers). Starting never blocks the loop: the supervisor launches the process, then
checks on each due turn whether it answers a PING. Workers need nothing from the master: their
Redis clients reconnect to the same socket by themselves.

redis-server is launched from the master's only thread: PR_SET_PDEATHSIG fires when the *thread*
that forked a child exits, so a helper thread would take the server down with it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from . import policy
from .lifetime import describe_exit
from .redis_server import RedisServer, RedisServerError

log = logging.getLogger("sioctl.master")

UP = "up"
DOWN = "down"
STARTING = "starting"

# A restarted server that does not answer within this long is killed and tried again.
START_TIMEOUT = 10.0
# How often a starting server is asked for a PING.
START_POLL = 0.05


class RedisSupervisor:
    """Watches one started :class:`RedisServer` and restarts it when it dies."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.state = UP
        self.pid = server.pid
        # Wall-clock time the current state began: up since, or down since.
        self.since = time.time()
        self.restarts = 0
        self.quick_deaths = 0
        self.up_at = time.monotonic()
        self.restart_at: float | None = None
        self.start_deadline = 0.0

    def check(self, now: float) -> None:
        """Notice a death, start a due restart, notice a restarted server answers
        (``now`` is ``time.monotonic()``)."""
        if self.state in (UP, STARTING):
            status = self.server.poll()
            if status is not None:
                self._died(now, describe_exit(status))
        if self.state == DOWN and self.restart_at is not None and now >= self.restart_at:
            self._restart(now)
        if self.state == STARTING:
            if self.server.answers():
                self.state = UP
                self.up_at = now
                log.info("embedded redis-server pid %s serves again, %.1fs after it went down",
                         self.pid, time.time() - self.since)
                self.since = time.time()
            elif now >= self.start_deadline:
                self.server.stop()  # SIGTERM, then SIGKILL: it is stuck
                self._died(now, f"did not answer within {START_TIMEOUT:g}s")

    def next_check(self, now: float) -> float | None:
        """Seconds until :meth:`check` has something to do without a signal, or None."""
        if self.state == STARTING:
            return START_POLL
        if self.state == DOWN and self.restart_at is not None:
            return max(0.0, self.restart_at - now)
        return None

    def _died(self, now: float, how: str) -> None:
        # A death before it answered, or soon after, counts towards backoff.
        self.quick_deaths, delay = policy.after_death(self.quick_deaths, self.state == UP,
                                                      self.up_at, now)
        name = "embedded redis-server" + (f" pid {self.pid}" if self.pid else "")
        if self.state == UP:
            self.since = time.time()
            log.error("%s %s; restarting it on %s", name, how, self.server.url)
        else:
            log.warning("%s %s while starting; next try in %.2fs (its log: %s)", name, how,
                        delay, self.server.log_tail())
        self.server.stop()  # reaps it and closes its log
        self.state = DOWN
        self.pid = None
        self.restart_at = now + delay

    def _restart(self, now: float) -> None:
        self.restart_at = None
        self.restarts += 1
        try:
            self.server.launch()
        except RedisServerError as exc:
            self.state = STARTING  # counted as a death at start, with its backoff
            self._died(now, f"cannot be started: {exc}")
            return
        self.state = STARTING
        self.pid = self.server.pid
        self.start_deadline = now + START_TIMEOUT

    def describe(self) -> dict[str, Any]:
        """What status shows: state (up, down, starting), pid, since (wall clock), restarts."""
        return {
            "state": self.state,
            "pid": self.pid,
            "since": self.since,
            "restarts": self.restarts,
            "url": self.server.url,
        }
