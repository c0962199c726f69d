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
from collections.abc import Callable
from typing import Any

from sioctl import __version__

from . import engine_probe, identity, proctitle
from .admin import Admin
from .client_address import TrustedProxies
from .control import ControlError, ControlServer
from .inspector import Inspector
from .listeners import ListenError, open_listener
from .logs import configure_logging, reopen_daemon_output, reopen_log_files
from .metrics import MetricsServer
from .reactor import Reactor
from .reconfig import compare
from .redis_server import RedisServer, RedisServerError, RedisServerNotFound
from .redis_supervisor import RedisSupervisor
from .router import Router
from .settings import AUTO, Settings, mask_url
from .slots import Slot
from .supervisor import BOOTING, RUNNING, STOPPING, Supervisor

log = logging.getLogger("sioctl.master")

__all__ = ["BOOTING", "RUNNING", "STOPPING", "Arbiter", "BootError", "raise_open_file_limit"]

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD,
                   signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU)


class BootError(Exception):
    """The cluster cannot start; the message is one line for the user."""


class Arbiter:
    """Runs a cluster with the given settings until it is told to stop."""

    def __init__(self, settings: Settings,
                 rebuild: Callable[[], Settings] | None = None) -> None:
        self.settings = settings
        # Builds the settings again from the config files (HUP); None: HUP only rolls.
        self.rebuild = rebuild
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
        proctitle.set_title("master", self.settings.proc_name or self.settings.title)
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
            log.info("metrics: %s", self.metrics.url)
        self.admin = Admin(self.reactor, self.control, self.metrics)
        self._write_pidfiles()
        self._switch_user()
        self.reactor.install_signals(HANDLED_SIGNALS)
        self._resolve_engine()
        if s.redis_url is None and s.workers > 1:
            self._start_embedded_redis()
        log.info("starting %d %s worker%s for %s (redis: %s)", s.workers, s.worker_class,
                 "" if s.workers == 1 else "s", s.app, self._redis_description())
        self.supervisor.start()

    def _switch_user(self) -> None:
        """``--user``/``--group``: become them for good once the listeners are bound, before the
        app is imported (engine probe) and Redis and the workers start, so none runs as root."""
        try:
            switched = identity.switch_user(self.settings)
        except identity.IdentityError as exc:
            raise BootError(str(exc)) from None
        if switched:
            log.info("running as uid %d, gid %d from now on", *switched)

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

    def _restart_workers(self, count: int | None = None) -> None:
        """Roll the workers (of the first ``count`` slots), on the engine the app needs now
        (probed again unless ``-k`` named it; the loop keeps serving while the probe imports
        the app)."""
        if self.engine_asked != AUTO or self.state != RUNNING:
            self.supervisor.rolling_restart(count)  # (which says why it ignores a restart)
        elif self.reprobe is not None and not self.reprobe.done:
            log.warning("restart ignored: the engine probe of the last one still runs")
        else:
            self.reprobe = engine_probe.Reprobe(
                self.reactor, self.settings, lambda found: self._reprobed(found, count))

    def _reprobed(self, found: engine_probe.Answer | None, count: int | None) -> None:
        """The probe of a HUP answered: an app that cannot be served now keeps the running
        workers; a guess (the app no longer imports unpatched) keeps the running engine."""
        if found is None:
            return
        if found.engine != self.settings.worker_class and found.imported:
            log.info("engine: %s instead of %s (the app is now %s)", found.engine,
                     self.settings.worker_class, engine_probe.describe(found.why))
            self.settings.worker_class = found.engine
        self.supervisor.rolling_restart(count)

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
                 ", ".join(self.router.addresses(self.settings.scheme)))
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
            log.info("HUP: reloading")
            self.reload()
        elif signum == signal.SIGUSR1:
            self.reopen_logs()
        elif signum == signal.SIGUSR2:
            # gunicorn's binary upgrade; left unhandled it ended the master and the cluster.
            log.warning("USR2 ignored: sioctl has no binary upgrade (HUP restarts the workers "
                        "on the new code; a new master needs a restart). To log a worker's "
                        "memory figures, send USR2 to the worker's pid (sioctl status)")
        elif signum == signal.SIGTTIN:
            log.info("TTIN: one worker more")
            self.supervisor.scale(len(self.router.slots) + 1)
        elif signum == signal.SIGTTOU:
            if len(self.router.slots) == 1:
                log.warning("TTOU ignored: one worker is the fewest a cluster runs")
            else:
                log.info("TTOU: one worker less")
                self.supervisor.scale(len(self.router.slots) - 1)

    def reload(self) -> dict[str, Any]:
        """HUP, ``sioctl reload``: read the config file and the app directory's config again,
        apply them, then roll every worker (which imports the app afresh). A config that
        cannot be read changes nothing: one ERROR line says why and the workers keep serving.
        Returns the control socket's reply."""
        problem = self.supervisor.cannot_roll()
        if problem:
            log.warning("reload ignored: %s", problem)
            return {"ok": False, "error": f"reload ignored: {problem}"}
        rolled = len(self.router.slots)
        if self.rebuild is not None:
            try:
                fresh = self.rebuild()
            except Exception as exc:  # RebuildError, or whatever the config raised: one line
                message = f"config not reloaded, the workers keep running: {exc}"
                log.error("%s", message)
                return {"ok": False, "error": message}
            rolled = self._apply_settings(fresh)
        self._restart_workers(rolled)
        return {"ok": True, "workers": self.settings.workers, "config": self.rebuild is not None}

    def _apply_settings(self, fresh: Settings) -> int:
        """Lay the re-read settings over the running ones (what the master holds since its
        start is kept, with a warning) and scale to their worker count; returns how many of
        the slots existed before (those the roll replaces: new slots start on the new config)."""
        changes = compare(self.settings, fresh)
        self.engine_asked = fresh.worker_class  # auto: the roll probes the app again
        if changes.need_restart:
            log.warning("reload: %s changed; kept until the cluster restarts",
                        ", ".join(changes.need_restart))
        for name, value in changes.apply.items():
            setattr(self.settings, name, value)
        if changes.apply:
            log.info("reload: new %s", ", ".join(sorted(changes.apply)))
        logging.getLogger("sioctl").setLevel(self.settings.loglevel.upper())
        before = len(self.router.slots)
        if fresh.workers != before:
            self.supervisor.scale(fresh.workers)
        return min(before, len(self.router.slots))

    def reopen_logs(self) -> None:
        """USR1 (logrotate): reopen the master's log file, then have every worker reopen its
        own (error and access logs); the cluster keeps serving throughout."""
        try:
            reopened = reopen_log_files(logging.getLogger("sioctl"))
            daemon_log = reopen_daemon_output(self.settings)
            if daemon_log:
                reopened.append(daemon_log)
        except OSError as exc:
            # The old file stays open: nothing is lost, and the next USR1 tries again.
            log.error("USR1: cannot reopen the log file: %s", exc)
        else:
            # Logged after the swap, so the line opens the new file.
            log.info("USR1: reopened %s; asking the workers to reopen theirs",
                     ", ".join(reopened) or "no log file (logging to stderr)")
        self.supervisor.reopen_logs()

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
            log.info("reload requested on the control socket")
            return self.reload()
        if name == "scale":
            return self._scale_command(command.get("workers"))
        return {"ok": False, "error": f"unknown command {name!r}"}

    def _scale_command(self, workers: Any) -> dict[str, Any]:
        """``sioctl scale N``: {"ok", "from", "workers"} or {"ok": False, "error"}."""
        if type(workers) is not int:
            return {"ok": False, "error": f"workers must be a number, not {workers!r}"}
        before = len(self.router.slots)
        problem = self.supervisor.scale(workers)
        if problem:
            return {"ok": False, "error": problem}
        return {"ok": True, "from": before, "workers": workers}

    def status(self) -> dict[str, Any]:
        """What ``sioctl status`` shows: the cluster and one entry per slot."""
        inspector = self.router.inspector
        return {
            "title": self.settings.title,
            "version": __version__,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "state": self.state,
            "app": self.settings.app,
            "engine": self.settings.worker_class,
            "binds": self.router.addresses(self.settings.scheme),
            "metrics": self.metrics.url if self.metrics else None,
            "redis": self._redis_description(),
            "graceful_timeout": self.settings.graceful_timeout,
            "workers": len(self.router.slots),
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
