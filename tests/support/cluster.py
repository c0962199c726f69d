"""A real sioctl cluster for the tests: ``python -m sioctl start ... --sticky`` run in the
foreground from the repository root (so ``tests.apps.*`` imports), bound to 127.0.0.1 on a free
port (tests.support.ports), with its run directory in a short temporary directory (Unix socket
paths are limited to 107 bytes); and ``run_sioctl`` for commands that run to completion.

The fixtures built on these (``start_cluster``, ``connect``, ``run_sioctl``, ``redis_url``) are in
tests/conftest.py; a module-scoped cluster fixture is ``yield from module_cluster(...)``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sioctl.cluster.control import ControlError, request
from tests.support.clients import free_port, wait_for_exit
from tests.support.paths import REPO_ROOT

# The chat app on each worker engine: the same events (tests/apps/chat.py, asyncchat.py), so a
# test parametrized over ENGINES ("engine") runs unchanged on both.
CHAT_APPS = {"eventlet": "tests.apps.chat:sio", "asyncio": "tests.apps.asyncchat:app"}
ENGINES = tuple(CHAT_APPS)
# The asyncio twin of each eventlet test app the raw-protocol suites serve: the same events and
# settings on socketio.AsyncServer / engineio.AsyncServer.
ASYNC_TWINS = {
    "tests.apps.chat:sio": "tests.apps.asyncchat:app",
    "tests.apps.fastping:sio": "tests.apps.asyncfastping:sio",
    "tests.apps.fastping:app": "tests.apps.asyncfastping:app",
    "tests.apps.fastping:tight": "tests.apps.asyncfastping:tight",
    "tests.apps.engine:sio": "tests.apps.asyncengine:sio",
    "tests.apps.engine:app": "tests.apps.asyncengine:app",
    "tests.apps.engine:mixed": "tests.apps.asyncengine:mixed",
    "tests.apps.fanout:sio": "tests.apps.asyncfanout:app",
    "tests.apps.ownjson:sio": "tests.apps.asyncownjson:app",
}
# The messaging test app on each worker engine (tests/apps/messaging.py and its asyncio twin).
MESSAGING_APPS = {"eventlet": "tests.apps.messaging:sio",
                  "asyncio": "tests.apps.async_messaging:app"}


def app_on(engine: str, app: str) -> str:
    """The app spec ``app`` (an eventlet test app) for ``engine``: itself, or its asyncio
    twin (ASYNC_TWINS)."""
    return ASYNC_TWINS[app] if engine == "asyncio" else app


# How long a cluster may take to report every worker ready.
BOOT_TIMEOUT = 30.0
# Extra time allowed past graceful_timeout for the master to exit on SIGTERM.
STOP_MARGIN = 10.0


# The module each engine's worker process runs (``python -m MODULE``).
WORKER_MODULES = {"eventlet": "sioctl.worker", "asyncio": "sioctl.worker.aio"}


def worker_module(pid: int) -> str:
    """The module worker ``pid`` runs (``python -m MODULE``). Its command line is its process
    title (``sioctl: worker N [NAME]``), so the module is told by the C extensions it maps:
    eventlet's greenlet for ``sioctl.worker``, uvicorn's httptools for ``sioctl.worker.aio``."""
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    green, httptools = "greenlet" in maps, "httptools" in maps
    if green != httptools:
        return WORKER_MODULES["eventlet" if green else "asyncio"]
    return f"unknown (pid {pid} maps greenlet: {green}, httptools: {httptools})"


def sioctl_command(*args: str) -> list[str]:
    """argv that runs the sioctl CLI with this interpreter."""
    return [sys.executable, "-m", "sioctl", *args]


def run_sioctl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run a sioctl command to completion from the repository root; returns its result."""
    return subprocess.run(
        sioctl_command(*args),
        cwd=REPO_ROOT,
        env=env if env is not None else os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_args(app: str, port: int, run_dir: str, *extra: str) -> list[str]:
    """The arguments of ``sioctl start APP --sticky`` on 127.0.0.1:``port``, titled ``t<port>``,
    with its run directory under ``run_dir``."""
    return [
        "start",
        app,
        "--sticky",
        "-b",
        f"127.0.0.1:{port}",
        "--run-dir",
        run_dir,
        "--title",
        f"t{port}",
        *extra,
    ]


def assert_clean_failure(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Non-zero exit, no traceback, and one stderr line holding every needle; returns that line."""
    assert result.returncode != 0, f"exit 0\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = [
        line
        for line in result.stderr.splitlines()
        if all(n.lower() in line.lower() for n in needles)
    ]
    assert lines, f"no stderr line names {needles}:\n{result.stderr}"
    return lines[0]


class Cluster:
    """One ``sioctl start --sticky`` master running in the foreground, with its workers."""

    def __init__(
        self,
        app: str,
        workers: int,
        redis_url: str | None,
        extra_args: Sequence[str],
        env: dict[str, str],
        log_dir: Path,
    ) -> None:
        self.app = app
        self.workers = workers
        self.redis_url = redis_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.title = f"t{self.port}"
        self.run_base = tempfile.mkdtemp(prefix="sio")
        self.run_dir = os.path.join(self.run_base, self.title)
        self.control_socket = os.path.join(self.run_dir, "control.sock")
        self.log_path = log_dir / f"cluster-{self.port}.log"
        self.args = [
            "start",
            app,
            "--sticky",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{self.port}",
            "--run-dir",
            self.run_base,
            "--title",
            self.title,
        ]
        if redis_url:
            self.args += ["--redis", redis_url]
        self.args += list(extra_args)
        self.env = {**os.environ, **env}
        # Every worker pid any status reported: none may outlive the cluster.
        self.seen_pids: set[int] = set()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = BOOT_TIMEOUT) -> Cluster:
        """Start the master and wait until it and every worker are ready."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                sioctl_command(*self.args),
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready(timeout)
        return self

    def url_of(self, slot: int) -> str:
        """The url clients of ``slot`` connect to: the master's, whatever the slot (it routes
        each client by its address)."""
        return self.url

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        """Everything the master and its workers printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n--- sioctl log ({self.log_path}) ---\n{self.log_text()}")

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """The master's answer to ``{"cmd": "status"}``."""
        reply = request(self.control_socket, {"cmd": "status"}, timeout=timeout)
        for slot in reply.get("slots", []):
            if slot.get("pid"):
                self.seen_pids.add(int(slot["pid"]))
        return reply

    def try_status(self) -> dict[str, Any] | None:
        """The status, or None while nobody answers on the control socket."""
        try:
            return self.status(timeout=2.0)
        except ControlError:
            return None

    def worker_pids(self) -> dict[int, int]:
        """{slot: worker pid} for the slots that have a worker now."""
        return {
            int(slot["slot"]): int(slot["pid"])
            for slot in self.status()["slots"]
            if slot.get("pid")
        }

    def slot_info(self, slot: int) -> dict[str, Any]:
        """The status entry of one slot."""
        for entry in self.status()["slots"]:
            if int(entry["slot"]) == slot:
                return dict(entry)
        raise AssertionError(f"slot {slot} missing from status")

    def is_ready(self) -> bool:
        """True when the master runs and every slot has a ready worker."""
        status = self.try_status()
        if status is None or status.get("state") != "running":
            return False
        slots = status.get("slots", [])
        return len(slots) == self.workers and all(
            s.get("state") == "ready" and s.get("pid") for s in slots
        )

    def wait_ready(self, timeout: float = BOOT_TIMEOUT) -> dict[str, Any]:
        """Wait until the cluster runs with every worker ready; returns the status."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                self.fail(f"sioctl exited with status {self.proc.returncode} before it was ready")
            if self.is_ready():
                return self.status()
            if time.monotonic() >= deadline:
                self.fail(
                    f"cluster not ready within {timeout:g}s; last status: {self.try_status()}"
                )
            time.sleep(0.1)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0, what: str = ""
    ) -> dict[str, Any]:
        """Poll the status until ``predicate(status)`` holds; returns that status."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = self.try_status()
            if last is not None and predicate(last):
                return last
            if time.monotonic() >= deadline:
                self.fail(f"timed out after {timeout:g}s waiting for {what}; last status: {last}")
            time.sleep(0.1)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the master."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float) -> int | None:
        """The master's exit status, or None if it still runs after ``timeout`` seconds."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> list[int]:
        """Stop the master (SIGTERM, then SIGKILL); returns worker pids that outlived it."""
        if self.proc is None:
            return []
        with contextlib.suppress(ControlError, OSError):
            if self.proc.poll() is None:
                self.status(timeout=2.0)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(30.0 + STOP_MARGIN) is None:
                self.proc.kill()
                self.proc.wait(10)
        survivors = wait_for_exit(sorted(self.seen_pids), 10.0)
        for pid in survivors:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.run_base, ignore_errors=True)
        return survivors


# The default for start_cluster(redis_url=...): the session's shared redis-server.
SHARED_REDIS = "shared"

StartCluster = Callable[..., Cluster]


def module_cluster(
    app: str, workers: int, redis_url: str | None, log_dir: Path, *args: str,
    env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """Yield a started cluster, then stop it and check no worker outlived its master: the body
    of a module-scoped cluster fixture (``yield from module_cluster(...)``)."""
    cluster = Cluster(app, workers, redis_url, args, env or {}, log_dir)
    try:
        yield cluster.start()
    finally:
        survivors = cluster.stop()
        assert not survivors, f"worker processes outlived their master: {survivors}"


