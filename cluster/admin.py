"""The master's two small servers on its loop: the control socket and the metrics endpoint.

Both accept without blocking, read and answer through the reactor, and drop a client that says
nothing useful within its timeout (checked once a second while any client is connected).
"""

from __future__ import annotations

import logging
import selectors
import socket

from .control import ControlServer
from .metrics import MetricsServer
from .reactor import Reactor

log = logging.getLogger("sioctl.master")

# How long accepting control clients pauses when the process runs out of file descriptors.
ACCEPT_PAUSE = 0.5
# How often clients that said nothing are looked for, while any are connected.
EXPIRY_CHECK = 1.0


class Admin:
    """Serves the control socket and, if there is one, the metrics endpoint on ``reactor``."""

    def __init__(self, reactor: Reactor, control: ControlServer,
                 metrics: MetricsServer | None) -> None:
        self.reactor = reactor
        self.control = control
        self.metrics = metrics
        reactor.watch(control.sock, self._on_control_accept)
        if metrics is not None:
            reactor.watch(metrics.sock, self._on_metrics_accept)

    # ------------------------------------------------------------------------------ control

    def _on_control_accept(self, sock: socket.socket, mask: int) -> None:
        try:
            conn = self.control.accept()
        except OSError as exc:
            # Out of descriptors: stop watching for a moment instead of spinning (the socket
            # stays readable) or dying.
            log.error("cannot accept a control client: %s", exc.strerror or exc)
            self.reactor.unwatch(sock)
            self.reactor.call_later("resume control", ACCEPT_PAUSE, self._resume_control)
            return
        if conn is not None:
            self.reactor.watch(conn, self._on_control_read)
            self._arm_expiry()

    def _resume_control(self) -> None:
        log.info("accepting control clients again")
        self.reactor.watch(self.control.sock, self._on_control_accept)

    def _on_control_read(self, conn: socket.socket, mask: int) -> None:
        if not self.control.read(conn):
            self.reactor.unwatch(conn)
            self.control.forget(conn)

    # ------------------------------------------------------------------------------ metrics

    def _on_metrics_accept(self, sock: socket.socket, mask: int) -> None:
        assert self.metrics is not None
        try:
            conn = self.metrics.accept()
        except OSError as exc:
            log.error("cannot accept a metrics scrape: %s", exc.strerror or exc)
            return
        if conn is not None:
            self.reactor.watch(conn, self._on_metrics_io)
            self._arm_expiry()

    def _on_metrics_io(self, conn: socket.socket, mask: int) -> None:
        assert self.metrics is not None
        done = False
        if mask & selectors.EVENT_READ and self.metrics.on_readable(conn):
            if self.metrics.has_reply(conn):
                self.reactor.set_events(conn, selectors.EVENT_WRITE)
            else:
                done = True
        if mask & selectors.EVENT_WRITE:
            done = self.metrics.on_writable(conn)
        if done:
            self.reactor.unwatch(conn)
            self.metrics.forget(conn)

    # ------------------------------------------------------------------------------- expiry

    def _arm_expiry(self) -> None:
        if self.reactor.deadline("admin client expiry") is None:
            self.reactor.call_later("admin client expiry", EXPIRY_CHECK, self._expire)

    def _expire(self) -> None:
        for conn in self.control.expired():
            self.reactor.unwatch(conn)
            self.control.forget(conn)
        connected = len(self.control.clients.peers)
        if self.metrics is not None:
            for conn in self.metrics.expired():
                self.reactor.unwatch(conn)
                self.metrics.forget(conn)
            connected += len(self.metrics.scrapes.peers)
        if connected:
            self._arm_expiry()
