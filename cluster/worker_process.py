"""One worker process as the master sees it: its process, its channel and what it last reported."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from typing import Any

from . import channel
from .lifetime import die_with_parent
from .settings import ASYNCIO, SETTINGS_ENV, SLOT_ENV, Settings

STARTING = "starting"
READY = "ready"
DRAINING = "draining"
STOPPED = "stopped"


class WorkerProcess:
    """A started worker. ``state`` moves starting → ready → draining → stopped."""

    def __init__(
        self,
        slot: int,
        process: subprocess.Popen[bytes],
        chan: socket.socket,
        worker_end: socket.socket | None = None,
    ) -> None:
        self.slot = slot
        self.process = process
        self.channel = chan
        # Our copy of the worker's end of the channel: read only after the worker exited, to
        # take back the connections it never read (channel.take_back).
        self.worker_end = worker_end
        self.state = STARTING
        self.started_at = time.time()
        self.started_monotonic = time.monotonic()
        self.last_heartbeat = time.monotonic()
        self.connections = 0
        self.sessions = 0
        # Connections the worker refused (503) because it was full, since it started.
        self.refused = 0
        # Socket.IO events received and emits made, since the worker started.
        self.socketio: dict[str, int] = {"events": 0, "emits": 0}
        self.boot_error: str | None = None
        # Where the app raised the boot error (innermost last), logged with it.
        self.boot_frames: list[str] = []
        # The worker's Redis figures (subscribed, queued, published, dropped...), if it has any.
        self.messaging: dict[str, Any] | None = None
        self.kill_deadline: float | None = None
        # When the master noticed the worker had gone silent (monotonic); None while it answers.
        # A stalled worker is handed nothing: its connections wait in the slot's queue.
        self.stalled_since: float | None = None
        # A USR1 (reopen the log files) came while the worker was starting: it is sent on ready.
        self.reopen_logs_when_ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def note(self, message: dict[str, Any]) -> None:
        """Record a message the worker sent."""
        kind = message["t"]
        self.last_heartbeat = time.monotonic()
        if kind == channel.READY and self.state == STARTING:
            self.state = READY
        elif kind == channel.STATS:
            self.connections = int(message.get("connections", 0))
            self.sessions = int(message.get("sessions", 0))
            self.refused = int(message.get("refused", 0))
            messaging = message.get("messaging")
            self.messaging = messaging if isinstance(messaging, dict) else None
            counts = message.get("socketio")
            if isinstance(counts, dict):
                self.socketio = {key: int(counts.get(key, 0)) for key in ("events", "emits")}
        elif kind == channel.BOOT_ERROR:
            self.boot_error = str(message.get("message", "unknown error"))
            frames = message.get("frames")
            if isinstance(frames, list):
                self.boot_frames = [str(frame) for frame in frames]

    def close_channel(self) -> None:
        """Close the master's end and its copy of the worker's end."""
        self.channel.close()
        if self.worker_end is not None:
            self.worker_end.close()

    def describe(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "state": "stalled" if self.stalled_since is not None else self.state,
            "started_at": self.started_at,
            "connections": self.connections,
            "sessions": self.sessions,
            "refused": self.refused,
            "events_received": self.socketio["events"],
            "emits": self.socketio["emits"],
            "messaging": self.messaging,
        }


def worker_module(settings: Settings) -> str:
    """The module a worker of ``settings`` runs: the asyncio engine's, or eventlet's."""
    return "sioctl.worker.aio" if settings.worker_class == ASYNCIO else "sioctl.worker"


def spawn_worker(settings: Settings, slot: int, redis_url: str | None) -> WorkerProcess:
    """Start ``python -m sioctl.worker`` (``sioctl.worker.aio`` for the asyncio engine) for
    ``slot`` as a fresh process (never a fork).

    The master must not fork itself into workers: eventlet, which the workers import, hooks
    fork(), and a fresh interpreter loads the user's code anew on every (re)spawn.
    """
    master_end, worker_end = channel.socketpair()
    worker_settings = Settings.from_json(settings.to_json())
    worker_settings.redis_url = redis_url
    env = dict(os.environ)
    env[SETTINGS_ENV] = worker_settings.to_json()
    env[SLOT_ENV] = str(slot)
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                worker_module(settings),
                "--channel-fd",
                str(worker_end.fileno()),
                "--slot",
                str(slot),
            ],
            pass_fds=(worker_end.fileno(),),
            env=env,
            cwd=settings.chdir or None,
            stdin=subprocess.DEVNULL,
            # Its own session: a terminal's Ctrl-C reaches only the master, which then
            # drains the workers; and it dies with the master.
            preexec_fn=die_with_parent(),
        )
    except BaseException:
        master_end.close()
        worker_end.close()
        raise
    # The master keeps the worker's end (not inheritable: no later child gets a copy) to take
    # back what the worker leaves unread if it dies.
    return WorkerProcess(slot, process, master_end, worker_end)
