"""The master: one loop that accepts connections, hands them to workers and keeps workers alive.

Everything happens in :meth:`Arbiter.run`'s loop around one selector. Signals only append to a
queue (and wake the selector through ``signal.set_wakeup_fd``); the loop handles them between
events, so every state change happens in one place and is logged. The master never reads a client
connection's bytes: it accepts, picks the slot from the client address, and passes the descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import selectors
import signal
import socket
import sys
import time
from collections import deque
from typing import Any

from . import channel
from .client_address import TrustedProxies
from .control import ControlError, ControlServer
from .inspector import PARK, WAIT, Inspection, Inspector, Outcome
from .lifetime import describe_exit
from .listeners import ListenError, display_address, open_listener, open_listeners
from .logs import configure_logging
from .metrics import MetricsServer
from .redis_server import RedisServer, RedisServerError, RedisServerNotFound
from .redis_supervisor import RedisSupervisor
from .settings import WORKER_BOOT_ERROR, Settings, mask_url
from .slots import PendingQueue, slot_for_address
from .worker_process import DRAINING, READY, STARTING, STOPPED, WorkerProcess, spawn_worker

log = logging.getLogger("sioctl.master")

BOOTING = "booting"
RUNNING = "running"
STOPPING = "stopping"

# Connections accepted per readiness event, so one busy listener cannot starve the others.
ACCEPT_BURST = 64
# A worker that dies sooner than this after its start (or before it is ready) counts towards
# crash-loop backoff; respawn delays double from BACKOFF_FIRST up to BACKOFF_MAX.
QUICK_DEATH = 5.0
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 15.0
# How long accepting pauses when the process runs out of file descriptors.
EMFILE_PAUSE = 0.5
# How long workers get to exit after SIGQUIT before they are killed.
QUIT_GRACE = 2.0
# A worker silent for this many heartbeat intervals (two heartbeats late) is stalled: it is handed
# nothing until it answers again. Never later than half of --timeout (so a stalled worker stops
# receiving well before the heartbeat check kills it), never sooner than 1.5 intervals.
STALL_INTERVALS = 3


HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD)


class BootError(Exception):
    """The cluster cannot start; the message is one line for the user."""


class Slot:
    """A worker position. Clients hash to a slot, not to a process, so a respawned or restarted
    worker serves the same clients."""

    def __init__(self, index: int, pending_limit: int) -> None:
        self.index = index
        self.worker: WorkerProcess | None = None
        # The replacement being started by a rolling restart, promoted once ready.
        self.standby: WorkerProcess | None = None
        self.pending = PendingQueue(pending_limit)
        self.restarts = 0
        self.quick_deaths = 0
        self.respawn_at: float | None = None
        self.dropped = 0
        self.handoffs = 0
        self.last_drop_log = 0.0
        # Connections taken back from a dead worker's channel, unread, for the next worker.
        self.requeued = 0

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "slot": self.index,
            "pid": None,
            "state": "backoff" if self.respawn_at is not None else STOPPED,
            "started_at": None,
            "connections": 0,
            "sessions": 0,
        }
        if self.worker is not None:
            info.update(self.worker.describe())
        info.update(
            restarts=self.restarts,
            pending=len(self.pending),
            dropped=self.dropped,
            handoffs=self.handoffs,
            standby_pid=self.standby.pid if self.standby is not None else None,
        )
        info.update(requeued=self.requeued)
        return info


class Arbiter:
    """Runs a cluster with the given settings until it is told to stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = BOOTING
        self.started_at = time.time()
        self.slots = [Slot(i, settings.pending_limit) for i in range(settings.workers)]
        self.retiring: list[WorkerProcess] = []
        self.rolling: deque[int] = deque()
        self.signals: deque[int] = deque()
        self.selector = selectors.DefaultSelector()
        self.listeners: list[socket.socket] = []
        self.listening = False
        self.accept_paused_until = 0.0
        self.control_paused_until: float | None = None
        self.control: ControlServer | None = None
        self.metrics: MetricsServer | None = None
        self.redis: RedisServer | None = None
        self.redis_watch: RedisSupervisor | None = None
        self.redis_url: str | None = settings.redis_url
        self.stop_deadline: float | None = None
        self.pending_total_limit = settings.pending_limit * settings.workers
        self.inspector = Inspector(settings.proxy_protocol,
                                   TrustedProxies(settings.forwarded_allow_ips))
        self.last_inspect_log = 0.0
        self.exit_code = 0
        self.ready_fd: int | None = None
        self._wakeup: tuple[int, int] | None = None

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
        reserve = 64 + 4 * self.settings.workers
        self.pending_total_limit = min(self.pending_total_limit, max(16, soft_limit - reserve))
        # Slow headers may hold at most half the descriptors left; the queues need the rest.
        self.inspector.total_limit = min(self.inspector.total_limit,
                                         max(16, (soft_limit - reserve) // 2))
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
        self._watch(self.control.sock, self._on_control_accept)
        try:
            self.listeners = open_listeners(s.binds, s.backlog)
        except ListenError as exc:
            raise BootError(str(exc)) from None
        if s.metrics_bind:
            try:
                metrics_sock = open_listener(s.metrics_bind, 64)
            except ListenError as exc:
                raise BootError(f"metrics: {exc}") from None
            self.metrics = MetricsServer(metrics_sock, self.status)
            self._watch(metrics_sock, self._on_metrics_accept)
        self._write_pidfiles()
        self._install_signals()
        if self.redis_url is None and s.workers > 1:
            self._start_embedded_redis()
        log.info(
            "starting %d worker%s for %s (redis: %s)",
            s.workers,
            "" if s.workers == 1 else "s",
            s.app,
            self._redis_description(),
        )
        for slot in self.slots:
            self._spawn(slot)

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

    def _start_embedded_redis(self) -> None:
        try:
            self.redis = RedisServer(self.settings.run_dir, unix_socket=True)
            self.redis.start()
        except (RedisServerNotFound, RedisServerError) as exc:
            # Its message ends with redis-server's own log; keep the last line on the one line.
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            message = lines[0] if len(lines) < 2 else f"{lines[0].rstrip(':')}: {lines[-1]}"
            raise BootError(message) from None
        self.redis_url = self.redis.url
        self.redis_watch = RedisSupervisor(self.redis)

    def _redis_description(self) -> str:
        if self.redis_url is None:
            return "in-memory (one worker)"
        prefix = "embedded " if self.redis is not None else ""
        return prefix + mask_url(self.redis_url)

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
        for worker in self._all_workers():
            if worker.process.poll() is None:
                worker.signal(signal.SIGKILL)
                worker.process.wait()
            worker.close_channel()
        for slot in self.slots:
            slot.pending.close_all()
        for inspection in list(self.inspector.pending.values()):
            inspection.conn.close()
        self.inspector.pending.clear()
        for sock in self.listeners:
            sock.close()
        if self.control is not None:
            self.control.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.redis is not None:
            self.redis.stop()
        for path in filter(None, [self.settings.master_pidfile, self.settings.pidfile]):
            with contextlib.suppress(OSError):
                with open(path) as f:
                    if f.read().strip() == str(os.getpid()):
                        os.unlink(path)
        self._restore_signals()
        self.selector.close()
        if self.ready_fd is not None:
            self._report_ready("error: the master stopped before the cluster was ready")

    # ------------------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        while True:
            for key, mask in self.selector.select(self._select_timeout()):
                key.data(key.fileobj, mask)
            self._handle_signals()
            self._reap()
            if self.state == STOPPING and not any(True for _ in self._all_workers()):
                log.info("stopped")
                return
            self._tick()

    def _select_timeout(self) -> float:
        # Heartbeats arrive every second, so a one-second tick is enough for most deadlines;
        # respawns after a short backoff should not wait for it.
        if self.signals:
            return 0.0
        timeout = 1.0
        # The oldest inspection's deadline (they are kept in deadline order): nothing to scan.
        inspection_deadline = self.inspector.next_deadline()
        if inspection_deadline is not None:
            timeout = max(0.0, min(timeout, inspection_deadline - time.monotonic()))
        respawns = [s.respawn_at for s in self.slots if s.respawn_at is not None]
        if self.redis_watch is not None:
            redis_check = self.redis_watch.next_check(time.monotonic())
            if redis_check is not None:
                respawns.append(time.monotonic() + redis_check)
        if respawns:
            return max(0.0, min(timeout, min(respawns) - time.monotonic()))
        return timeout

    def _tick(self) -> None:
        if self.inspector.pending:
            self._check_inspections()
        now = time.monotonic()
        if self.state != STOPPING:
            for slot in self.slots:
                if slot.respawn_at is not None and slot.respawn_at <= now:
                    self._spawn(slot)
            self._check_heartbeats(now)
            if self.redis_watch is not None:
                self.redis_watch.check(now)
            for slot in self.slots:
                if slot.pending and slot.worker is not None and slot.worker.state == READY:
                    self._flush(slot)
            resume = self.state == RUNNING and now >= self.accept_paused_until
            if resume and not self.listening:
                self._start_accepting()
        for worker in self.retiring:
            if worker.kill_deadline is not None and worker.kill_deadline <= now:
                log.warning(
                    "slot %d: old worker pid %d did not drain within %ss, killing it",
                    worker.slot,
                    worker.pid,
                    self.settings.graceful_timeout,
                )
                worker.signal(signal.SIGKILL)
                worker.kill_deadline = None
        if self.stop_deadline is not None and self.stop_deadline <= now:
            alive = [w for w in self._all_workers() if w.process.poll() is None]
            if alive:
                log.warning(
                    "killing %d worker(s) still running after the stop timeout: %s",
                    len(alive),
                    ", ".join(str(w.pid) for w in alive),
                )
            for worker in alive:
                worker.signal(signal.SIGKILL)
            self.stop_deadline = None
        if self.control_paused_until is not None and now >= self.control_paused_until:
            self.control_paused_until = None
            if self.control is not None:
                self._watch(self.control.sock, self._on_control_accept)
        if self.metrics is not None:
            for conn in self.metrics.expired():
                self._unwatch(conn)
                self.metrics.forget(conn)
        if self.control is not None:
            for conn in self.control.expired():
                self._unwatch(conn)
                self.control.forget(conn)

    def _stall_after(self) -> float:
        """Seconds of silence after which a ready worker is handed nothing more."""
        after = STALL_INTERVALS * channel.HEARTBEAT_INTERVAL
        if self.settings.timeout > 0:
            after = min(after, self.settings.timeout / 2)
        # Never within one interval of the last heartbeat: a healthy worker would flap.
        return max(after, 1.5 * channel.HEARTBEAT_INTERVAL)

    def _check_heartbeats(self, now: float) -> None:
        stall_after = self._stall_after()
        for slot in self.slots:
            worker = slot.worker
            if (worker is not None and worker.state == READY and worker.stalled_since is None
                    and now - worker.last_heartbeat > stall_after):
                # Whatever we send now would sit unread in its channel; the slot's queue holds
                # new connections instead, until it answers or its replacement is ready.
                worker.stalled_since = now
                log.warning(
                    "slot %d: worker pid %d silent for %.1fs; its new connections wait in the "
                    "slot's queue",
                    slot.index,
                    worker.pid,
                    now - worker.last_heartbeat,
                )
        if self.settings.timeout <= 0:
            return  # as in gunicorn, 0 turns the check off
        for worker in self._all_workers():
            if worker.state in (STARTING, READY) and worker.process.poll() is None:
                silent = now - worker.last_heartbeat
                if silent > self.settings.timeout:
                    log.error(
                        "slot %d: worker pid %d sent nothing for %.0fs (timeout %ss), killing it",
                        worker.slot,
                        worker.pid,
                        silent,
                        self.settings.timeout,
                    )
                    worker.signal(signal.SIGKILL)
                    # Once is enough; the reaper respawns it.
                    worker.last_heartbeat = now

    def _all_workers(self) -> list[WorkerProcess]:
        workers = [w for s in self.slots for w in (s.worker, s.standby) if w is not None]
        return workers + self.retiring

    # ------------------------------------------------------------------------------ selector

    def _watch(self, fileobj: socket.socket, callback: Any) -> None:
        self.selector.register(fileobj, selectors.EVENT_READ, callback)

    def _unwatch(self, fileobj: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fileobj)

    def _start_accepting(self) -> None:
        for sock in self.listeners:
            self._watch(sock, self._on_listener)
        self.listening = True

    def _stop_accepting(self) -> None:
        for sock in self.listeners:
            self._unwatch(sock)
        self.listening = False

    # ---------------------------------------------------------------------------- dispatching

    def _on_listener(self, sock: socket.socket, mask: int) -> None:
        for _ in range(ACCEPT_BURST):
            try:
                conn, address = sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("cannot accept: %s; pausing for %ss", exc.strerror, EMFILE_PAUSE)
                    self._stop_accepting()
                    self.accept_paused_until = time.monotonic() + EMFILE_PAUSE
                    return
                continue  # ECONNABORTED and friends: that client is gone already
            peer = (address[0], address[1])
            if self.inspector.needed(peer):
                inspection = self.inspector.start(conn, peer)
                self.selector.register(conn, selectors.EVENT_READ, self._on_inspect)
                self._inspected(inspection, self.inspector.step(inspection))
            else:
                self._dispatch(conn, peer)

    def _on_inspect(self, conn: socket.socket, mask: int) -> None:
        inspection = self.inspector.pending.get(conn.fileno())
        if inspection is None:
            self._unwatch(conn)
            return
        outcome = self.inspector.step(inspection)
        if outcome is PARK:
            # Readable for good without more bytes (half-closed): only its deadline is left.
            self._unwatch(conn)
            return
        # WAIT leaves it watched: the inspector made it readable again only once more bytes
        # than it peeked at are in.
        self._inspected(inspection, outcome)

    def _inspected(self, inspection: Inspection, outcome: Outcome) -> None:
        """Dispatch an inspected connection, drop it, or let it wait (WAIT, PARK)."""
        if outcome is WAIT or outcome is PARK:
            return
        conn = inspection.conn
        self.inspector.finish(inspection)
        self._unwatch(conn)
        if outcome.address is not None:
            self._dispatch(conn, outcome.address)
            return
        conn.close()
        now = time.monotonic()
        if now - self.last_inspect_log >= 1.0:
            self.last_inspect_log = now
            log.warning("closed a connection from %s: %s (%d bad, %d timed out, %d refused "
                        "so far)", inspection.peer[0], outcome.error, self.inspector.errors,
                        self.inspector.timeouts, self.inspector.refused)

    def _check_inspections(self) -> None:
        # Only those past their deadline, from the front: one last look, then closed.
        for inspection in self.inspector.due(time.monotonic()):
            self._inspected(inspection, self.inspector.step(inspection))

    def _dispatch(self, conn: socket.socket, address: tuple[str, int]) -> None:
        slot = self.slots[slot_for_address(address[0], len(self.slots))]
        # The per-slot bound alone would let one stuck slot use up every descriptor and stop
        # accepting for all; the total stays below the open-file limit.
        total = sum(len(s.pending) for s in self.slots)
        if total < self.pending_total_limit and slot.pending.push(conn, address):
            self._flush(slot)
            return
        conn.close()
        slot.dropped += 1
        now = time.monotonic()
        if now - slot.last_drop_log >= 1.0:
            slot.last_drop_log = now
            log.warning(
                "slot %d: %d connection(s) waiting for its worker (the limit), closed the one "
                "from %s (%d closed so far)",
                slot.index,
                slot.pending.limit,
                address[0],
                slot.dropped,
            )

    def _flush(self, slot: Slot) -> None:
        """Hand the slot's waiting connections to its worker until its channel is full."""
        worker = slot.worker
        if worker is None or worker.state != READY or worker.stalled_since is not None:
            return
        while slot.pending:
            conn, address = slot.pending.peek()
            message = channel.encode({"t": channel.CONN, "addr": list(address)})
            try:
                socket.send_fds(worker.channel, [message], [conn.fileno()])
            except BlockingIOError:
                # The worker is not reading (busy, stuck or stopped): wait for the channel to
                # drain instead of blocking the loop and every other slot.
                self._set_channel_events(worker, selectors.EVENT_READ | selectors.EVENT_WRITE)
                return
            except OSError as exc:
                if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                    # ETOOMANYREFS, ENOBUFS: passing conditions; the tick tries again.
                    log.warning("slot %d: cannot hand a connection over: %s", slot.index, exc)
                return  # otherwise the worker is gone; its replacement gets the queue
            slot.pending.pop()
            conn.close()
            slot.handoffs += 1
        self._set_channel_events(worker, selectors.EVENT_READ)

    def _set_channel_events(self, worker: WorkerProcess, events: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            if self.selector.get_key(worker.channel).events != events:
                self.selector.modify(worker.channel, events, self._on_channel)

    # ------------------------------------------------------------------------------- workers

    def _spawn(self, slot: Slot, standby: bool = False) -> None:
        slot.respawn_at = None
        try:
            worker = spawn_worker(self.settings, slot.index, self.redis_url)
        except OSError as exc:
            log.error("slot %d: cannot start a worker: %s", slot.index, exc)
            if standby:
                # The slot's worker keeps serving; a later HUP can try again.
                log.error("rolling restart stopped at slot %d", slot.index)
                self.rolling.clear()
            else:
                self._schedule_respawn(slot, quick=True)
            return
        if standby:
            slot.standby = worker
        else:
            slot.worker = worker
        self._watch(worker.channel, self._on_channel)
        log.info("slot %d: started worker pid %d", slot.index, worker.pid)

    def _schedule_respawn(self, slot: Slot, quick: bool) -> None:
        slot.quick_deaths = slot.quick_deaths + 1 if quick else 0
        delay = 0.0
        if slot.quick_deaths > 1:
            delay = min(BACKOFF_FIRST * 2 ** (slot.quick_deaths - 2), BACKOFF_MAX)
            log.warning(
                "slot %d: worker keeps dying right after start; next try in %.2fs",
                slot.index,
                delay,
            )
        slot.respawn_at = time.monotonic() + delay

    def _worker_of_channel(self, chan: socket.socket) -> WorkerProcess | None:
        for worker in self._all_workers():
            if worker.channel is chan:
                return worker
        return None

    def _on_channel(self, chan: socket.socket, mask: int) -> None:
        worker = self._worker_of_channel(chan)
        if worker is None:
            self._unwatch(chan)
            return
        if mask & selectors.EVENT_WRITE:
            if worker is self.slots[worker.slot].worker:
                self._flush(self.slots[worker.slot])
            else:
                self._set_channel_events(worker, selectors.EVENT_READ)
        if not mask & selectors.EVENT_READ:
            return
        for _ in range(100):
            try:
                data = chan.recv(channel.MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                # The worker closed its end: it is exiting. The reaper does the rest.
                self._unwatch(chan)
                return
            try:
                message = channel.decode(data)
            except ValueError as exc:
                log.warning("slot %d: worker pid %d sent %s", worker.slot, worker.pid, exc)
                continue
            was_ready = worker.state == READY
            last_heard = worker.last_heartbeat
            worker.note(message)
            if worker.state == READY and not was_ready:
                self._on_worker_ready(worker)
            elif worker.stalled_since is not None:
                self._on_worker_answers(worker, worker.last_heartbeat - last_heard)

    def _on_worker_answers(self, worker: WorkerProcess, silent: float) -> None:
        """A stalled worker spoke again (SIGCONT, or it was only busy): it receives again."""
        worker.stalled_since = None
        slot = self.slots[worker.slot]
        if worker is not slot.worker:
            return
        log.info("slot %d: worker pid %d answers again after %.1fs of silence; handing it %d "
                 "waiting connection(s)", slot.index, worker.pid, silent, len(slot.pending))
        self._flush(slot)

    def _on_worker_ready(self, worker: WorkerProcess) -> None:
        slot = self.slots[worker.slot]
        log.info("slot %d: worker pid %d ready", slot.index, worker.pid)
        if worker is slot.standby:
            old = slot.worker
            slot.worker, slot.standby = worker, None
            if old is not None:
                self._retire(old)
            self._flush(slot)
            self._next_rolling()
            return
        self._flush(slot)
        if self.state == BOOTING and all(
            s.worker is not None and s.worker.state == READY for s in self.slots
        ):
            self.state = RUNNING
            self._start_accepting()
            addresses = ", ".join(display_address(sock) for sock in self.listeners)
            log.info("%s ready: listening on %s", self.settings.title, addresses)
            self._report_ready("ready")

    def _retire(self, worker: WorkerProcess) -> None:
        """Drain a worker that has been replaced: it finishes its sessions, then exits."""
        worker.state = DRAINING
        # Nothing more is handed to it; a channel left watched for writing would spin the loop.
        self._set_channel_events(worker, selectors.EVENT_READ)
        worker.kill_deadline = time.monotonic() + self.settings.graceful_timeout
        worker.signal(signal.SIGTERM)
        self.retiring.append(worker)
        log.info("slot %d: draining old worker pid %d", worker.slot, worker.pid)

    def _reap(self) -> None:
        for worker in self._all_workers():
            status = worker.process.poll()
            if status is None:
                continue
            self._unwatch(worker.channel)
            self._take_back(worker)
            worker.close_channel()
            was_ready = worker.state in (READY, DRAINING)
            worker.state = STOPPED
            self._on_worker_exit(worker, status, was_ready)

    def _take_back(self, worker: WorkerProcess) -> None:
        """Put the connections a dead worker never read back at the head of its slot's queue,
        for the next worker (or close them when the cluster stops)."""
        if worker.worker_end is None:
            return
        unread = channel.take_back(worker.worker_end)
        if not unread:
            return
        slot = self.slots[worker.slot]
        if self.state == STOPPING:
            for conn, _ in unread:
                conn.close()
            log.info("slot %d: closed %d connection(s) worker pid %d never read", slot.index,
                     len(unread), worker.pid)
            return
        slot.pending.requeue(unread)
        slot.requeued += len(unread)
        log.warning("slot %d: took back %d connection(s) worker pid %d never read; they go to "
                    "the next worker", slot.index, len(unread), worker.pid)

    def _on_worker_exit(self, worker: WorkerProcess, status: int, was_ready: bool) -> None:
        slot = self.slots[worker.slot]
        how = describe_exit(status)
        if worker in self.retiring:
            self.retiring.remove(worker)
            log.info("slot %d: old worker pid %d %s", slot.index, worker.pid, how)
            return
        was_standby = worker is slot.standby
        if was_standby:
            slot.standby = None
        else:
            slot.worker = None
        if self.state == STOPPING:
            log.info("slot %d: worker pid %d %s", slot.index, worker.pid, how)
            return
        reason = worker.boot_error or f"worker pid {worker.pid} {how}"
        if self.state == BOOTING:
            if not worker.boot_error:
                reason = f"slot {slot.index}: {reason} before it was ready"
            self._fail(reason)
            self._begin_stop(graceful=False)
            return
        if was_standby:
            log.error("rolling restart stopped at slot %d: %s", slot.index, reason)
            self.rolling.clear()
            return
        quick = not was_ready or time.monotonic() - worker.started_monotonic < QUICK_DEATH
        if worker.boot_error or status == WORKER_BOOT_ERROR:
            log.error("slot %d: worker could not start: %s", slot.index, reason)
            quick = True
        else:
            log.error("slot %d: worker pid %d %s; respawning", slot.index, worker.pid, how)
        slot.restarts += 1
        self._schedule_respawn(slot, quick)

    # ------------------------------------------------------------------ signals and commands

    def _install_signals(self) -> None:
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wakeup = (read_end, write_end)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._queue_signal)
        self.selector.register(read_end, selectors.EVENT_READ, self._drain_wakeup)

    def _restore_signals(self) -> None:
        if self._wakeup is None:
            return
        signal.set_wakeup_fd(-1)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        for fd in self._wakeup:
            os.close(fd)
        self._wakeup = None

    def _queue_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def _drain_wakeup(self, fd: int, mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(fd, 4096):
                pass

    def _handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.popleft()
            if signum == signal.SIGCHLD:
                continue  # the reaper runs after every loop turn
            name = signal.Signals(signum).name
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("%s: stopping gracefully", name)
                self._begin_stop(graceful=self.state != STOPPING)
            elif signum == signal.SIGQUIT:
                log.info("%s: stopping now", name)
                self._begin_stop(graceful=False)
            elif signum == signal.SIGHUP:
                self._begin_rolling_restart()

    def _on_command(self, command: dict[str, Any]) -> dict[str, Any]:
        name = command.get("cmd")
        if name == "ping":
            return {"ok": True}
        if name == "status":
            return self.status()
        if name == "stop":
            graceful = bool(command.get("graceful", True))
            log.info("stop requested on the control socket (%s)", "graceful" if graceful else "now")
            self._begin_stop(graceful=graceful)
            return {"ok": True, "pid": os.getpid()}
        if name == "reload":
            self._begin_rolling_restart()
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {name!r}"}

    def _on_control_accept(self, sock: socket.socket, mask: int) -> None:
        assert self.control is not None
        try:
            conn = self.control.accept()
        except OSError as exc:
            # Out of descriptors: stop watching for a moment instead of spinning (the socket
            # stays readable) or dying; the tick watches it again.
            log.error("cannot accept a control client: %s", exc.strerror or exc)
            self._unwatch(sock)
            self.control_paused_until = time.monotonic() + EMFILE_PAUSE
            return
        if conn is not None:
            self._watch(conn, self._on_control_read)

    def _on_control_read(self, conn: socket.socket, mask: int) -> None:
        assert self.control is not None
        if not self.control.read(conn):
            self._unwatch(conn)
            self.control.forget(conn)

    def _on_metrics_accept(self, sock: socket.socket, mask: int) -> None:
        assert self.metrics is not None
        try:
            conn = self.metrics.accept()
        except OSError as exc:
            log.error("cannot accept a metrics scrape: %s", exc.strerror or exc)
            return
        if conn is not None:
            self.selector.register(conn, selectors.EVENT_READ, self._on_metrics_io)

    def _on_metrics_io(self, conn: socket.socket, mask: int) -> None:
        assert self.metrics is not None
        done = False
        if mask & selectors.EVENT_READ and self.metrics.on_readable(conn):
            if self.metrics.has_reply(conn):
                self.selector.modify(conn, selectors.EVENT_WRITE, self._on_metrics_io)
            else:
                done = True
        if mask & selectors.EVENT_WRITE:
            done = self.metrics.on_writable(conn)
        if done:
            self._unwatch(conn)
            self.metrics.forget(conn)

    def status(self) -> dict[str, Any]:
        """What ``sioctl status`` shows: the cluster and one entry per slot."""
        return {
            "title": self.settings.title,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "state": self.state,
            "app": self.settings.app,
            "binds": [display_address(sock) for sock in self.listeners],
            "redis": self._redis_description(),
            "graceful_timeout": self.settings.graceful_timeout,
            "inspection": {"pending": len(self.inspector.pending),
                           "errors": self.inspector.errors,
                           "timeouts": self.inspector.timeouts,
                           "refused": self.inspector.refused},
            "slots": [slot.describe() for slot in self.slots],
            "embedded_redis": self.redis_watch.describe() if self.redis_watch else None,
        }

    def _begin_stop(self, graceful: bool) -> None:
        if self.state == STOPPING and graceful:
            return
        self.state = STOPPING
        self.rolling.clear()
        self._stop_accepting()
        for sock in self.listeners:
            sock.close()
        self.listeners = []
        for slot in self.slots:
            slot.respawn_at = None
            closed = slot.pending.close_all()
            if closed:
                log.info("slot %d: closed %d waiting connection(s)", slot.index, closed)
        signum = signal.SIGTERM if graceful else signal.SIGQUIT
        for worker in self._all_workers():
            worker.signal(signum)
        timeout = self.settings.graceful_timeout if graceful else QUIT_GRACE
        self.stop_deadline = time.monotonic() + timeout

    def _begin_rolling_restart(self) -> None:
        if self.state != RUNNING:
            log.warning("restart ignored: the cluster is %s", self.state)
            return
        if self.rolling or any(slot.standby is not None for slot in self.slots):
            log.warning("restart ignored: a rolling restart is in progress")
            return
        log.info("rolling restart of %d worker(s), one slot at a time", len(self.slots))
        self.rolling.extend(range(len(self.slots)))
        self._next_rolling()

    def _next_rolling(self) -> None:
        while self.rolling:
            slot = self.slots[self.rolling.popleft()]
            if slot.worker is None or slot.standby is not None:
                continue  # a dead slot gets a fresh worker anyway
            log.info("slot %d: starting its replacement worker", slot.index)
            self._spawn(slot, standby=True)
            return
        log.info("rolling restart done")


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
