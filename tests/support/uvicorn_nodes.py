"""socketio.AsyncServer apps joined through Redis by sioctl's asyncio manager, until the
asyncio worker engine serves them: one uvicorn process per node on 127.0.0.1, each serving
tests/apps/async_messaging.py on a port of its own. Slot k is node k (clients reach a node by
its url, not through a master's sticky routing).

:class:`UvicornNodes` offers what the messaging tests use of a ``conftest.Cluster``
(``url_of``, ``log_text``, ``worker_pids``, ``stop``), so the same tests run on both engines
(the ``start_nodes`` fixture in conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.clients import free_port, wait_for_exit
from tests.support.paths import REPO_ROOT

APP = "tests.apps.async_messaging:app"
BOOT_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class UvicornNodes:
    """``nodes`` uvicorn processes serving APP, on the Redis at ``redis_url``."""

    def __init__(self, redis_url: str, log_dir: Path, nodes: int = 2,
                 transport: str = "pubsub") -> None:
        self.redis_url = redis_url
        self.transport = transport
        self.ports = [free_port() for _ in range(nodes)]
        self.log_paths = [log_dir / f"uvicorn-{port}.log" for port in self.ports]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, timeout: float = BOOT_TIMEOUT) -> UvicornNodes:
        """Start every node; return once each listens (uvicorn listens after the app's
        lifespan startup, which waits until the node's Redis reader has subscribed)."""
        for slot, (port, log_path) in enumerate(zip(self.ports, self.log_paths, strict=True)):
            env = {**os.environ, "SIOCTL_WORKER_SLOT": str(slot),
                   "SIOCTL_TEST_REDIS": self.redis_url,
                   "SIOCTL_TEST_TRANSPORT": self.transport}
            with open(log_path, "ab") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port",
                     str(port), "--lifespan", "on", "--http", "h11", "--ws", "wsproto",
                     "--log-level", "info", "--no-access-log",
                     # A client that never closes its websocket does not hold the stop up.
                     "--timeout-graceful-shutdown", "5"],
                    cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout
        for proc, port in zip(self.procs, self.ports, strict=True):
            while not _listening(port):
                if proc.poll() is not None or time.monotonic() >= deadline:
                    raise AssertionError(f"uvicorn node on port {port} did not start:\n"
                                         f"{self.log_text()}")
                time.sleep(0.05)
        return self

    def url_of(self, slot: int) -> str:
        """The url clients of slot ``slot`` connect to."""
        return f"http://127.0.0.1:{self.ports[slot]}"

    def log_text(self) -> str:
        """Everything the nodes printed so far."""
        return "".join(path.read_text(errors="replace") for path in self.log_paths
                       if path.exists())

    def worker_pids(self) -> dict[int, int]:
        """{slot: pid} of the nodes still running."""
        return {slot: proc.pid for slot, proc in enumerate(self.procs) if proc.poll() is None}

    def stop(self) -> list[int]:
        """Stop every node (SIGTERM, then SIGKILL); returns the pids that needed SIGKILL."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        stubborn = wait_for_exit([proc.pid for proc in self.procs], STOP_TIMEOUT)
        for proc in self.procs:
            if proc.pid in stubborn:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        return stubborn


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0
