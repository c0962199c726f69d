"""Keeping one worker per slot alive: spawn, heartbeats, respawn with backoff, rolling restart,
drain and stop.

The supervisor owns the cluster's state (booting → running → stopping) and every worker process.
It reads each worker's channel (ready, heartbeats, figures), tells the router when a slot's worker
can take connections, and decides what happens when a worker dies, goes silent or is replaced —
the rules themselves (crash-loop backoff, stall threshold, rolling order) are the pure functions
of :mod:`policy`. Each decision is logged. Timers are named deadlines on the reactor; a death is
noticed when SIGCHLD reaches the loop (:meth:`reap`).
"""

from __future__ import annotations

import functools
import logging
import selectors
import signal
import time
from collections import deque
from collections.abc import Callable

from . import channel, policy
from .lifetime import describe_exit
from .reactor import Reactor
from .router import Router
from .settings import WORKER_BOOT_ERROR, Settings
from .slots import Slot
from .worker_process import DRAINING, READY, STARTING, STOPPED, WorkerProcess, spawn_worker

log = logging.getLogger("sioctl.master")

BOOTING = "booting"
RUNNING = "running"
STOPPING = "stopping"

# How long workers get to exit after SIGQUIT before they are killed.
QUIT_GRACE = 2.0
# Messages read from one channel per readiness event, so one chatty worker cannot hold the loop.
CHANNEL_BURST = 100


class Supervisor:
    """Runs ``settings.workers`` worker processes, one per slot, and keeps them running."""

    def __init__(self, settings: Settings, reactor: Reactor, router: Router,
                 on_running: Callable[[], None], on_boot_failed: Callable[[str], None]) -> None:
        self.settings = settings
        self.reactor = reactor
        self.router = router
        self.slots = router.slots
        self.state = BOOTING
        self.retiring: list[WorkerProcess] = []
        self.rolling: deque[int] = deque()
        self.redis_url: str | None = settings.redis_url
        # Called once every slot has a ready worker at boot, and when a worker fails the boot.
        self.on_running = on_running
        self.on_boot_failed = on_boot_failed

    def start(self) -> None:
        """Spawn one worker per slot and start watching heartbeats."""
        for slot in self.slots:
            self._spawn(slot)
        self._arm_heartbeat_check(time.monotonic())

    def all_workers(self) -> list[WorkerProcess]:
        """Every running worker: each slot's worker and standby, then those draining."""
        workers = [w for s in self.slots for w in (s.worker, s.standby) if w is not None]
        return workers + self.retiring

    def finished(self) -> bool:
        """Whether the cluster is stopping and every worker has exited."""
        return self.state == STOPPING and not self.all_workers()

    # ------------------------------------------------------------------------------ spawning

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
                self._schedule_respawn(slot, ready=False, started=time.monotonic())
            return
        if standby:
            slot.standby = worker
        else:
            slot.worker = worker
        self.reactor.watch(worker.channel, functools.partial(self._on_channel, worker))
        log.info("slot %d: started worker pid %d", slot.index, worker.pid)

    def _schedule_respawn(self, slot: Slot, ready: bool, started: float) -> None:
        """Start the slot's next worker after the death of one started at ``started`` that
        became ready (``ready``) or not: at once, or after the crash-loop backoff."""
        now = time.monotonic()
        slot.quick_deaths, delay = policy.after_death(slot.quick_deaths, ready, started, now)
        if delay:
            log.warning("slot %d: worker keeps dying right after start; next try in %.2fs",
                        slot.index, delay)
        slot.respawn_at = now + delay
        self.reactor.call_at(f"respawn slot {slot.index}", slot.respawn_at,
                             functools.partial(self._respawn, slot))

    def _respawn(self, slot: Slot) -> None:
        if self.state != STOPPING:
            self._spawn(slot)

    # ------------------------------------------------------------------- what workers report

    def _on_channel(self, worker: WorkerProcess, chan: object, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self.router.on_channel_writable(worker)
        if not mask & selectors.EVENT_READ:
            return
        for _ in range(CHANNEL_BURST):
            try:
                data = worker.channel.recv(channel.MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                # The worker closed its end: it is exiting. SIGCHLD brings the reaper.
                self.reactor.unwatch(worker.channel)
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
        slot = self.router.slot_of(worker)
        if slot is None or worker is not slot.worker:
            return
        log.info("slot %d: worker pid %d answers again after %.1fs of silence; handing it %d "
                 "waiting connection(s)", slot.index, worker.pid, silent, len(slot.pending))
        self.router.flush(slot)

    def _on_worker_ready(self, worker: WorkerProcess) -> None:
        slot = self.slots[worker.slot]
        log.info("slot %d: worker pid %d ready", slot.index, worker.pid)
        if worker.reopen_logs_when_ready:
            # It may have opened its log files before a rotation that happened while it started.
            worker.reopen_logs_when_ready = False
            worker.signal(signal.SIGUSR1)
        if worker is slot.standby:
            old = slot.worker
            slot.worker, slot.standby = worker, None
            if old is not None:
                self._retire(old)
            self.router.flush(slot)
            self._next_rolling()
            return
        self.router.flush(slot)
        if slot.index >= self.router.routing:
            self._widen_routing()
        if self.state == BOOTING and all(
            s.worker is not None and s.worker.state == READY for s in self.slots
        ):
            self.state = RUNNING
            self.router.start_accepting()
            self.on_running()

    # ---------------------------------------------------------------------------- heartbeats

    def _check_heartbeats(self) -> None:
        if self.state == STOPPING:
            return
        now = time.monotonic()
        after = policy.stall_after(self.settings.timeout, channel.HEARTBEAT_INTERVAL)
        for slot in self.slots:
            worker = slot.worker
            if (worker is not None and worker.state == READY and worker.stalled_since is None
                    and policy.is_stalled(worker.last_heartbeat, now, after)):
                # Whatever we send now would sit unread in its channel; the slot's queue holds
                # new connections instead, until it answers or its replacement is ready.
                worker.stalled_since = now
                log.warning("slot %d: worker pid %d silent for %.1fs; its new connections wait "
                            "in the slot's queue", slot.index, worker.pid,
                            now - worker.last_heartbeat)
        for worker in self.all_workers():
            if (worker.state in (STARTING, READY)
                    and policy.is_hung(worker.last_heartbeat, now, self.settings.timeout)
                    and worker.process.poll() is None):
                log.error("slot %d: worker pid %d sent nothing for %.0fs (timeout %ss), "
                          "killing it", worker.slot, worker.pid, now - worker.last_heartbeat,
                          self.settings.timeout)
                worker.signal(signal.SIGKILL)
                # Once is enough; the reaper respawns it.
                worker.last_heartbeat = now
        self._arm_heartbeat_check(now)

    def _arm_heartbeat_check(self, now: float) -> None:
        after = policy.stall_after(self.settings.timeout, channel.HEARTBEAT_INTERVAL)
        stall_watch = [s.worker.last_heartbeat for s in self.slots
                       if s.worker is not None and s.worker.state == READY
                       and s.worker.stalled_since is None]
        hang_watch = [w.last_heartbeat for w in self.all_workers()
                      if w.state in (STARTING, READY)]
        when = policy.next_heartbeat_check(stall_watch, hang_watch, now, after,
                                           self.settings.timeout, channel.HEARTBEAT_INTERVAL)
        self.reactor.call_at("heartbeat check", when, self._check_heartbeats)

    # ------------------------------------------------------------------------------- deaths

    def reap(self) -> None:
        """Deal with every worker that has exited (called when SIGCHLD reaches the loop)."""
        for worker in self.all_workers():
            status = worker.process.poll()
            if status is None:
                continue
            self.reactor.unwatch(worker.channel)
            self.router.take_back(worker)
            worker.close_channel()
            was_ready = worker.state in (READY, DRAINING)
            worker.state = STOPPED
            self._on_worker_exit(worker, status, was_ready)

    def _on_worker_exit(self, worker: WorkerProcess, status: int, was_ready: bool) -> None:
        how = describe_exit(status)
        if worker in self.retiring:
            # Replaced, or its slot removed by a scale-down (then self.slots no longer has it).
            self.retiring.remove(worker)
            self.reactor.cancel(f"drain timeout pid {worker.pid}")
            log.info("slot %d: old worker pid %d %s", worker.slot, worker.pid, how)
            return
        slot = self.slots[worker.slot]
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
            self.on_boot_failed(reason)
            _log_frames(worker)
            self.stop(graceful=False)
            return
        if was_standby:
            log.error("rolling restart stopped at slot %d: %s", slot.index, reason)
            _log_frames(worker)
            self.rolling.clear()
            return
        boot_failed = bool(worker.boot_error) or status == WORKER_BOOT_ERROR
        if boot_failed:
            log.error("slot %d: worker could not start: %s", slot.index, reason)
            _log_frames(worker)
        else:
            log.error("slot %d: worker pid %d %s; respawning", slot.index, worker.pid, how)
        slot.restarts += 1
        self._schedule_respawn(slot, was_ready and not boot_failed, worker.started_monotonic)

    # ----------------------------------------------------------------- restarting, stopping

    def cannot_roll(self) -> str | None:
        """Why a rolling restart cannot start now, or None."""
        if self.state != RUNNING:
            return f"the cluster is {self.state}"
        if self.rolling or any(slot.standby is not None for slot in self.slots):
            return "a rolling restart is in progress"
        return None

    def rolling_restart(self, count: int | None = None) -> None:
        """Replace every worker (of the first ``count`` slots), one slot at a time: each
        replacement serves once it is ready, then the old worker drains (SIGHUP,
        ``sioctl reload``)."""
        problem = self.cannot_roll()
        if problem:
            log.warning("restart ignored: %s", problem)
            return
        count = len(self.slots) if count is None else min(count, len(self.slots))
        log.info("rolling restart of %d worker(s), one slot at a time", count)
        self.rolling = policy.rolling_order(count)
        self._next_rolling()

    def _next_rolling(self) -> None:
        index = policy.next_to_replace(
            self.rolling,
            lambda i: self.slots[i].worker is not None and self.slots[i].standby is None,
        )
        if index is None:
            log.info("rolling restart done")
            return
        log.info("slot %d: starting its replacement worker", index)
        self._spawn(self.slots[index], standby=True)

    # ------------------------------------------------------------------------------ scaling

    def scale(self, target: int) -> str | None:
        """Run ``target`` workers (TTIN, TTOU, ``sioctl scale``); returns why not, or None.

        New slots each get a worker and take their share of the clients once every new slot's
        worker is ready (until then the jump hash keeps the old count). Removed slots are the
        highest (the jump hash then moves only their clients): they stop receiving at once,
        what waits in their queues goes to the slots that serve it now, and their workers
        drain as a rolling restart drains an old worker.
        """
        problem = self._cannot_scale(target)
        if problem:
            log.warning("scale to %d worker(s) ignored: %s", target, problem)
            return problem
        current = len(self.slots)
        if target == current:
            return None
        log.info("scaling from %d to %d worker(s)", current, target)
        self.settings.workers = target
        if target > current:
            for index in range(current, target):
                slot = Slot(index, self.settings.pending_limit)
                self.slots.append(slot)
                self._spawn(slot)
            self.router.set_pending_total(self.settings.pending_limit)
            return None
        self.router.resize(min(self.router.routing, target))
        for slot in reversed(self.slots[target:]):
            self.reactor.cancel(f"respawn slot {slot.index}")
            slot.respawn_at = None
            if slot.worker is not None:
                self._retire(slot.worker)
        del self.slots[target:]
        self.router.set_pending_total(self.settings.pending_limit)
        return None

    def _cannot_scale(self, target: int) -> str | None:
        if self.state != RUNNING:
            return f"the cluster is {self.state}"
        if target < 1:
            return "a cluster runs at least one worker"
        if self.rolling or any(slot.standby is not None for slot in self.slots):
            return "a rolling restart is in progress"
        if target > 1 and self.redis_url is None:
            return ("the workers would have no Redis to join them (the cluster started with "
                    "one worker and no --redis); restart it with --redis URL or -w 2 or more")
        return None

    def _widen_routing(self) -> None:
        """Hash clients over every leading slot whose worker is ready (after a scale-up)."""
        routing = self.router.routing
        while routing < len(self.slots):
            worker = self.slots[routing].worker
            if worker is None or worker.state != READY:
                break
            routing += 1
        if routing != self.router.routing:
            self.router.resize(routing)
            log.info("clients are spread over %d worker(s) now", routing)

    def _retire(self, worker: WorkerProcess) -> None:
        """Drain a worker that has been replaced: it finishes its sessions, then exits."""
        worker.state = DRAINING
        # Nothing more is handed to it; a channel left watched for writing would spin the loop.
        self.reactor.set_events(worker.channel, selectors.EVENT_READ)
        worker.kill_deadline = time.monotonic() + self.settings.graceful_timeout
        self.reactor.call_at(f"drain timeout pid {worker.pid}", worker.kill_deadline,
                             functools.partial(self._drain_timeout, worker))
        worker.signal(signal.SIGTERM)
        self.retiring.append(worker)
        log.info("slot %d: draining old worker pid %d", worker.slot, worker.pid)

    def _drain_timeout(self, worker: WorkerProcess) -> None:
        if worker not in self.retiring:
            return
        log.warning("slot %d: old worker pid %d did not drain within %ss, killing it",
                    worker.slot, worker.pid, self.settings.graceful_timeout)
        worker.signal(signal.SIGKILL)
        worker.kill_deadline = None

    def reopen_logs(self) -> None:
        """Send SIGUSR1 (reopen your log files) to every worker that handles it; a worker still
        starting gets it once it is ready (before that, USR1 would end it)."""
        for worker in self.all_workers():
            if worker.state == STARTING:
                worker.reopen_logs_when_ready = True
            else:
                worker.signal(signal.SIGUSR1)

    def stop(self, graceful: bool) -> None:
        """Stop accepting, close what waits, and stop every worker: SIGTERM (they drain within
        --graceful-timeout) or SIGQUIT (within QUIT_GRACE); then SIGKILL."""
        if self.state == STOPPING and graceful:
            return
        self.state = STOPPING
        self.rolling.clear()
        self.router.close()
        self.reactor.cancel("heartbeat check")
        for slot in self.slots:
            slot.respawn_at = None
            self.reactor.cancel(f"respawn slot {slot.index}")
        signum = signal.SIGTERM if graceful else signal.SIGQUIT
        for worker in self.all_workers():
            worker.signal(signum)
        timeout = self.settings.graceful_timeout if graceful else QUIT_GRACE
        self.reactor.call_later("stop timeout", timeout, self._stop_timeout)

    def _stop_timeout(self) -> None:
        alive = [w for w in self.all_workers() if w.process.poll() is None]
        if alive:
            log.warning("killing %d worker(s) still running after the stop timeout: %s",
                        len(alive), ", ".join(str(w.pid) for w in alive))
        for worker in alive:
            worker.signal(signal.SIGKILL)

    def kill_all(self) -> None:
        """SIGKILL and wait for every worker still running (the master is exiting)."""
        for worker in self.all_workers():
            if worker.process.poll() is None:
                worker.signal(signal.SIGKILL)
                worker.process.wait()
            worker.close_channel()


def _log_frames(worker: WorkerProcess) -> None:
    """Log where the app raised a worker's boot error, under the error's line: at the default
    level, since a one-line ``KeyError: 'DATABASE_URL'`` does not say which line of the app."""
    for frame in worker.boot_frames:
        log.error("  at %s", frame)
