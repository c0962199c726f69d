"""The master: boots the cluster, runs its one loop, and cleans up after it.

The arbiter puts the parts together and owns what belongs to the whole cluster: the run
directory, the pidfiles, the control socket and metrics endpoint (:mod:`admin`), the embedded
redis-server and its supervision (:mod:`redis_supervisor`), the signals, and status. The
:class:`~.router.Router` takes client connections to their slot's worker; the
:class:`~.supervisor.Supervisor` keeps one worker per slot alive. Everything happens in
:meth:`Arbiter.run`'s loop around one :class:`~.reactor.Reactor`: signals only append to a queue
(and wake the selector), the loop handles them between events, timers are named deadlines, so
every state change happens in one place and is logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import sys
import time
from typing import Any

from . import engine_probe
from .admin import Admin
from .client_address import TrustedProxies
from .control import ControlError, ControlServer
from .inspector import Inspector
from .listeners import ListenError, open_listener
from .logs import configure_logging
from .metrics import MetricsServer
from .reactor import Reactor
from .redis_server import RedisServer, RedisServerError, RedisServerNotFound
from .redis_supervisor import RedisSupervisor
from .router import Router
from .settings import AUTO, Settings, mask_url
from .slots import Slot
from .supervisor import BOOTING, RUNNING, STOPPING, Supervisor

log = logging.getLogger("sioctl.master")

__all__ = ["BOOTING", "RUNNING", "STOPPING", "Arbiter", "BootError", "raise_open_file_limit"]

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD)


class BootError(Exception):
    """The cluster cannot start; the message is one line for the user."""


class Arbiter:
    """Runs a cluster with the given settings until it is told to stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = time.time()
        self.reactor = Reactor()
        slots = [Slot(i, settings.pending_limit) for i in range(settings.workers)]
        inspector = Inspector(settings.proxy_protocol, TrustedProxies(settings.forwarded_allow_ips))
        self.router = Router(self.reactor, slots, inspector,
                             settings.pending_limit * settings.workers)
        self.supervisor = Supervisor(settings, self.reactor, self.router,
                                     on_running=self._on_running, on_boot_failed=self._fail)
        self.control: ControlServer | None = None
        self.metrics: MetricsServer | None = None
        self.admin: Admin | None = None
        self.redis: RedisServer | None = None
        self.redis_watch: RedisSupervisor | None = None
        self.exit_code = 0
        self.ready_fd: int | None = None
        # The engine -k asked for (AUTO: probed at boot and again on every HUP).
        self.engine_asked = settings.worker_class
        self.reprobe: engine_probe.Reprobe | None = None

    @property
    def state(self) -> str:
        """booting, running or stopping."""
        return self.supervisor.state

    # ----------------------------------------------------------------------------- lifecycle

    def run(self, ready_fd: int | None = None) -> int:
        """Boot, serve until stopped, clean up; returns the process exit code.

        With ``ready_fd``, writes ``ready`` or ``error: <reason>`` there once the outcome of the
        boot is known (this is how ``sioctl start --daemon`` learns it).
        """
        self.ready_fd = ready_fd
        try:
            configure_logging(self.settings, "master")
        except OSError as exc:
            print(f"error: cannot open error log {self.settings.errorlog}: {exc.strerror}",
                  file=sys.stderr)
            self._report_ready(f"error: cannot open error log {self.settings.errorlog}")
            return 1
        soft_limit = raise_open_file_limit()
        # Leave room for listeners, channels, logs, control clients and Redis.
        self.router.limit_descriptors(soft_limit - (64 + 4 * self.settings.workers))
        try:
            try:
                self._boot()
            except BootError as exc:
                self._fail(str(exc))
                return 1
            self._loop()
            return self.exit_code
        finally:
            self._cleanup()

    def _boot(self) -> None:
        s = self.settings
        self._prepare_run_dir()
        try:
            self.control = ControlServer(s.control_socket, self._on_command)
        except ControlError as exc:
            raise BootError(f"a cluster titled {s.title!r} is already running ({exc})") from None
        try:
            self.router.open(s.binds, s.backlog)
        except ListenError as exc:
            raise BootError(str(exc)) from None
        if s.metrics_bind:
            try:
                metrics_sock = open_listener(s.metrics_bind, 64)
            except ListenError as exc:
                raise BootError(f"metrics: {exc}") from None
            self.metrics = MetricsServer(metrics_sock, self.status)
        self.admin = Admin(self.reactor, self.control, self.metrics)
        self._write_pidfiles()
        self.reactor.install_signals(HANDLED_SIGNALS)
        self._resolve_engine()
        if s.redis_url is None and s.workers > 1:
            self._start_embedded_redis()
        log.info("starting %d %s worker%s for %s (redis: %s)", s.workers, s.worker_class,
                 "" if s.workers == 1 else "s", s.app, self._redis_description())
        self.supervisor.start()

    def _resolve_engine(self) -> None:
        """Settle the workers' engine (``-k``, else what the app needs) before any starts."""
        self.engine_asked = self.settings.worker_class
        try:
            engine, why = engine_probe.resolve(self.settings)
        except engine_probe.ProbeError as exc:
            raise BootError(str(exc)) from None
        if self.settings.worker_class == AUTO:
            log.info("engine: %s (the app is %s)", engine, engine_probe.describe(why))
        self.settings.worker_class = engine

    def _restart_workers(self) -> None:
        """HUP, ``sioctl reload``: roll the workers, on the engine the app needs now (probed
        again unless ``-k`` named it; the loop keeps serving while the probe imports the app)."""
        if self.engine_asked != AUTO or self.state != RUNNING:
            self.supervisor.rolling_restart()  # (which says why it ignores a restart)
        elif self.reprobe is not None and not self.reprobe.done:
            log.warning("restart ignored: the engine probe of the last one still runs")
        else:
            self.reprobe = engine_probe.Reprobe(self.reactor, self.settings, self._reprobed)

    def _reprobed(self, found: engine_probe.Answer | None) -> None:
        """The probe of a HUP answered: an app that cannot be served now keeps the running
        workers; a guess (the app no longer imports unpatched) keeps the running engine."""
        if found is None:
            return
        if found.engine != self.settings.worker_class and found.imported:
            log.info("engine: %s instead of %s (the app is now %s)", found.engine,
                     self.settings.worker_class, engine_probe.describe(found.why))
            self.settings.worker_class = found.engine
        self.supervisor.rolling_restart()

    def _prepare_run_dir(self) -> None:
        run_dir = self.settings.run_dir
        try:
            os.makedirs(run_dir, mode=0o700, exist_ok=True)
            os.chmod(run_dir, 0o700)
        except OSError as exc:
            raise BootError(f"cannot use run directory {run_dir}: {exc.strerror}") from None

    def _write_pidfiles(self) -> None:
        for path in filter(None, [self.settings.master_pidfile, self.settings.pidfile]):
            try:
                with open(path, "w") as f:
                    f.write(f"{os.getpid()}\n")
            except OSError as exc:
                raise BootError(f"cannot write pidfile {path}: {exc.strerror}") from None

    def _remove_pidfiles(self) -> None:
        for path in filter(None, [self.settings.master_pidfile, self.settings.pidfile]):
            with contextlib.suppress(OSError):
                with open(path) as f:
                    if f.read().strip() == str(os.getpid()):
                        os.unlink(path)

    def _on_running(self) -> None:
        log.info("%s ready: listening on %s", self.settings.title,
                 ", ".join(self.router.addresses()))
        self._report_ready("ready")

    def _fail(self, message: str) -> None:
        log.error("%s", message)
        self._report_ready(f"error: {message}")
        self.exit_code = 1

    def _report_ready(self, line: str) -> None:
        if self.ready_fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.ready_fd, line.encode() + b"\n")
            os.close(self.ready_fd)
        self.ready_fd = None

    def _cleanup(self) -> None:
        self.supervisor.kill_all()
        self.router.release()
        if self.control is not None:
            self.control.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.redis is not None:
            self.redis.stop()
        self._remove_pidfiles()
        self.reactor.close()
        if self.ready_fd is not None:
            self._report_ready("error: the master stopped before the cluster was ready")

    # ------------------------------------------------------------------------- embedded Redis

    def _start_embedded_redis(self) -> None:
        try:
            self.redis = RedisServer(self.settings.run_dir, unix_socket=True)
            self.redis.start()
        except (RedisServerNotFound, RedisServerError) as exc:
            # Its message ends with redis-server's own log; keep the last line on the one line.
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            message = lines[0] if len(lines) < 2 else f"{lines[0].rstrip(':')}: {lines[-1]}"
            raise BootError(message) from None
        self.supervisor.redis_url = self.redis.url
        self.redis_watch = RedisSupervisor(self.redis)

    def _check_redis(self) -> None:
        """Let the Redis supervisor notice a death, restart, or answer; then wait for its next
        deadline (a death wakes us through SIGCHLD)."""
        if self.redis_watch is None or self.state == STOPPING:
            return
        now = time.monotonic()
        self.redis_watch.check(now)
        delay = self.redis_watch.next_check(now)
        if delay is None:
            self.reactor.cancel("embedded redis")
        else:
            self.reactor.call_at("embedded redis", now + delay, self._check_redis)

    def _redis_description(self) -> str:
        url = self.supervisor.redis_url
        if url is None:
            return "in-memory (one worker)"
        prefix = "embedded " if self.redis is not None else ""
        return prefix + mask_url(url)

    # ------------------------------------------------------------------ the loop and signals

    def _loop(self) -> None:
        while True:
            self.reactor.run_once(self._on_signal)
            if self.supervisor.finished():
                log.info("stopped")
                return

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            # Some child exited (or stopped): look at each of ours.
            self.supervisor.reap()
            self._check_redis()
            return
        name = signal.Signals(signum).name
        if signum in (signal.SIGTERM, signal.SIGINT):
            log.info("%s: stopping gracefully", name)
            self.supervisor.stop(graceful=self.state != STOPPING)
        elif signum == signal.SIGQUIT:
            log.info("%s: stopping now", name)
            self.supervisor.stop(graceful=False)
        elif signum == signal.SIGHUP:
            self._restart_workers()

    def _on_command(self, command: dict[str, Any]) -> dict[str, Any]:
        name = command.get("cmd")
        if name == "ping":
            return {"ok": True}
        if name == "status":
            return self.status()
        if name == "stop":
            graceful = bool(command.get("graceful", True))
            log.info("stop requested on the control socket (%s)", "graceful" if graceful else "now")
            self.supervisor.stop(graceful=graceful)
            return {"ok": True, "pid": os.getpid()}
        if name == "reload":
            self._restart_workers()
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {name!r}"}

    def status(self) -> dict[str, Any]:
        """What ``sioctl status`` shows: the cluster and one entry per slot."""
        inspector = self.router.inspector
        return {
            "title": self.settings.title,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "state": self.state,
            "app": self.settings.app,
            "engine": self.settings.worker_class,
            "binds": self.router.addresses(),
            "redis": self._redis_description(),
            "graceful_timeout": self.settings.graceful_timeout,
            "inspection": {"pending": len(inspector.pending),
                           "errors": inspector.errors,
                           "timeouts": inspector.timeouts,
                           "refused": inspector.refused},
            "slots": [slot.describe() for slot in self.router.slots],
            "embedded_redis": self.redis_watch.describe() if self.redis_watch else None,
        }


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one; returns the soft limit now in force.

    Every waiting connection is a descriptor in the master; the common soft limit of 1024 is
    far below what the hard limit allows.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20
