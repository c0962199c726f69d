"""``sioctl dev`` end to end: reload on change, survive a broken edit, stop on Ctrl-C, and the
local sticky cluster of ``--workers N``.

The app is a module of its own written into a temporary directory, which is also the dev
server's working directory (the directory it watches). Every edit moves the file's mtime by
whole seconds: Python's bytecode cache compares the source mtime in seconds (and the size), so
two same-sized edits within one second would otherwise load the stale bytecode.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from sioctl.cluster.control import ControlError, request
from tests.support.clients import (
    children_of,
    free_port,
    ips_for_slot,
    make_client,
    pid_alive,
    wait_for_exit,
    wait_until,
)
from tests.support.cluster import ENGINES, WORKER_MODULES, worker_module

APP_SOURCE = '''"""A tiny app for the sioctl dev tests."""

import os

import socketio

VERSION = {version}

sio = socketio.Server()


@sio.event
def version(sid, data=None):
    return {{
        "version": VERSION,
        "pid": os.getpid(),
        "slot": int(os.environ.get("SIOCTL_WORKER_SLOT", "-1")),
    }}


@sio.event
def broadcast(sid, data=None):
    sio.emit("news", data)
    return True
'''
# The same app on the asyncio engine (a socketio.AsyncServer; ``sio`` is what dev serves).
ASYNC_APP_SOURCE = '''"""A tiny asyncio app for the sioctl dev tests."""

import os

import socketio

VERSION = {version}

sio = socketio.AsyncServer(async_mode="asgi")


@sio.event
async def version(sid, data=None):
    return {{
        "version": VERSION,
        "pid": os.getpid(),
        "slot": int(os.environ.get("SIOCTL_WORKER_SLOT", "-1")),
    }}
'''
SOURCES = {"eventlet": APP_SOURCE, "asyncio": ASYNC_APP_SOURCE}
# How long the dev server may take to (re)start serving after a change.
RESTART_TIMEOUT = 20.0
# The reloader looks for changes once a second; a change it would act on is seen within this.
RELOADER_POLLS = 3.0
EXIT_TIMEOUT = 20.0


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children_of(todo.pop()):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


class DevServer:
    """``python -m sioctl dev devapp:sio`` running in ``app_dir``, its output in a log file."""

    def __init__(self, app_dir: Path, *extra: str, source: str = APP_SOURCE) -> None:
        self.app_dir = app_dir
        self.source = source
        self.app_file = app_dir / "devapp.py"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Unix socket paths are short: the run dir cannot live under pytest's tmp_path.
        self.run_base = tempfile.mkdtemp(prefix="sio")
        self.run_dir = os.path.join(self.run_base, f"sioctl-{self.port}")
        self.log_path = app_dir / "dev.log"
        self.argv = [
            sys.executable, "-m", "sioctl", "dev", "devapp:sio",
            "-b", f"127.0.0.1:{self.port}", "--run-dir", self.run_base, *extra,
        ]
        # Every process seen below the dev process: none may outlive it.
        self.seen: set[int] = set()
        self.proc: subprocess.Popen[bytes] | None = None

    def write_app(self, version: str) -> None:
        """Write the app with ``VERSION = version``; its mtime moves on by whole seconds."""
        before = self.app_file.stat().st_mtime if self.app_file.exists() else time.time()
        self.app_file.write_text(self.source.format(version=version))
        mtime = int(max(before, time.time())) + 2
        os.utime(self.app_file, (mtime, mtime))

    def start(self) -> DevServer:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.app_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def note_children(self) -> list[int]:
        """The processes below the dev process now (remembered for the cleanup)."""
        below = descendants(self.pid)
        self.seen.update(below)
        return below

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ask(self, source_ip: str = "127.0.0.1") -> dict[str, Any] | None:
        """The app's answer to 'version' for a fresh client, or None if nobody serves it."""
        self.note_children()
        client = make_client(source_ip, ("websocket",), reconnection=False)
        try:
            client.connect(self.url, wait_timeout=3)
            answer = client.call("version", timeout=3)
        except (socketio.exceptions.SocketIOError, OSError):
            return None
        finally:
            with contextlib.suppress(Exception):
                client.disconnect()
        assert isinstance(answer, dict), answer
        return answer

    def wait_version(self, version: int, timeout: float = RESTART_TIMEOUT) -> dict[str, Any]:
        """Poll until a new client is served ``version``; returns that answer."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if not self.alive():
                self.fail(f"sioctl dev exited ({self.proc and self.proc.returncode})")
            last = self.ask()
            if last is not None and last["version"] == version:
                return last
            if time.monotonic() >= deadline:
                self.fail(f"VERSION {version} not served within {timeout:g}s; last: {last}")
            time.sleep(0.2)

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the dev process; returns its exit status."""
        assert self.proc is not None
        self.note_children()
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"sioctl dev still runs {EXIT_TIMEOUT:g}s after SIGINT")
            raise  # not reached

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n--- sioctl dev log ---\n{self.log_text()}")

    def cleanup(self) -> list[int]:
        """Kill whatever is left; returns the processes that had outlived the dev process."""
        if self.proc is not None and self.proc.poll() is None:
            self.note_children()
            self.proc.kill()
            self.proc.wait(10)
        survivors = wait_for_exit(sorted(self.seen), 10.0)
        for pid in survivors:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.run_base, ignore_errors=True)
        return survivors


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``dev_server(*extra_args, source=APP_SOURCE)`` writes devapp.py (VERSION = 1)
    and starts ``sioctl dev`` on it; every dev process and child is gone at teardown."""
    made: list[DevServer] = []

    def start(*extra: str, source: str = APP_SOURCE) -> DevServer:
        app_dir = tmp_path / f"app{len(made)}"
        app_dir.mkdir()
        server = DevServer(app_dir, *extra, source=source)
        made.append(server)
        server.write_app("1")
        return server.start()

    yield start

    leftovers = {server.pid: server.cleanup() for server in made if server.proc is not None}
    leftovers = {pid: left for pid, left in leftovers.items() if left}
    assert not leftovers, f"processes outlived sioctl dev: {leftovers}"


@pytest.mark.parametrize("engine", ENGINES)
def test_dev_reloads_and_survives_a_broken_edit(dev_server: Any, engine: str) -> None:
    dev = dev_server(source=SOURCES[engine])
    first = dev.wait_version(1)
    assert first["pid"] in dev.note_children(), "the app is not served by a child of sioctl dev"

    dev.write_app("2")
    second = dev.wait_version(2)
    assert second["pid"] != first["pid"]
    assert wait_for_exit([first["pid"]], 10.0) == [], "the old server outlived the restart"

    # A syntax error: the dev process logs it and waits for the next save.
    dev.write_app("(")
    try:
        wait_until(
            lambda: "SyntaxError" in dev.log_text() and dev.ask() is None,
            RESTART_TIMEOUT,
            what="the broken edit to be reported",
        )
    except AssertionError as exc:
        dev.fail(str(exc))
    assert dev.alive(), "sioctl dev ended on a broken edit"

    dev.write_app("3")
    third = dev.wait_version(3)
    assert third["pid"] not in (first["pid"], second["pid"])

    pids = dev.note_children()
    assert dev.interrupt() == 0
    assert wait_for_exit(pids + [third["pid"]], 10.0) == [], "a child outlived sioctl dev"


@pytest.mark.parametrize("engine", ENGINES)
def test_dev_follows_an_app_that_changes_engine(dev_server: Any, engine: str) -> None:
    """The engine is probed again at each restart: an app rewritten for the other engine is
    served by that engine after the save."""
    other = next(e for e in ENGINES if e != engine)
    dev = dev_server(source=SOURCES[engine])
    first = dev.wait_version(1)
    assert worker_module(first["pid"]) == WORKER_MODULES[engine]
    dev.source = SOURCES[other]
    dev.write_app("2")
    second = dev.wait_version(2)
    assert worker_module(second["pid"]) == WORKER_MODULES[other]
    assert dev.interrupt() == 0


def test_dev_no_reload_ignores_changes(dev_server: Any) -> None:
    dev = dev_server("--no-reload")
    first = dev.wait_version(1)
    dev.write_app("2")
    # Nothing to wait for: give a reloader that wrongly runs a few polls to act.
    time.sleep(RELOADER_POLLS)
    again = dev.ask()
    assert again is not None, "the server stopped serving after a change"
    assert (again["version"], again["pid"]) == (1, first["pid"]), "--no-reload restarted"
    assert "changed" not in dev.log_text()
    assert dev.interrupt() == 0
    assert wait_for_exit([first["pid"]], 10.0) == []


def _dev_cluster_status(dev: DevServer) -> dict[str, Any] | None:
    try:
        reply = request(os.path.join(dev.run_dir, "control.sock"), {"cmd": "status"}, 2.0)
    except (ControlError, OSError):
        return None
    slots = reply.get("slots", [])
    ready = len(slots) == 2 and all(s.get("state") == "ready" and s.get("pid") for s in slots)
    return reply if reply.get("state") == "running" and ready else None


def test_dev_workers_runs_the_sticky_cluster_with_embedded_redis(dev_server: Any) -> None:
    dev = dev_server("--workers", "2")
    try:
        status = wait_until(lambda: _dev_cluster_status(dev), 30.0, what="2 ready workers")
    except AssertionError as exc:
        dev.fail(str(exc))
    master = int(status["pid"])
    assert master in children_of(dev.pid), "the master is not a child of sioctl dev"
    # README: more than one worker and no --redis -> a private redis-server on a Unix socket in
    # the run directory.
    assert status["redis"].startswith("embedded unix://"), status["redis"]
    assert dev.run_dir in status["redis"]
    redis_pids = children_of(master, "redis-server")
    assert len(redis_pids) == 1, f"redis-server children of the master: {redis_pids}"
    worker_pids = {int(s["slot"]): int(s["pid"]) for s in status["slots"]}
    dev.note_children()

    clients = []
    try:
        for slot in (0, 1):
            ip = ips_for_slot(slot, 2)[0]
            answer = dev.ask(ip)
            assert answer is not None, f"no answer for {ip}"
            assert (answer["slot"], answer["pid"]) == (slot, worker_pids[slot]), ip
            client = make_client(ip, ("websocket",))
            clients.append(client)
            client.record("news")
            client.connect(dev.url)
        # An emit on slot 0's worker reaches slot 1's client: the embedded redis joins them.
        token = uuid.uuid4().hex
        assert clients[0].call("broadcast", token, timeout=10) is True
        assert clients[1].next_event("news") == token
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                client.disconnect()

    assert dev.interrupt() == 0
    left = wait_for_exit([master, *worker_pids.values(), *redis_pids], 15.0)
    assert left == [], f"still running after sioctl dev exited: {left}"
    assert not pid_alive(master)


def test_a_killed_dev_supervisor_takes_its_server_along(dev_server: Any) -> None:
    dev = dev_server()
    served = dev.wait_version(1)
    children = dev.note_children()
    assert served["pid"] in children
    assert dev.proc is not None
    dev.proc.kill()  # no chance to clean up: the kernel must end the server
    dev.proc.wait(EXIT_TIMEOUT)
    assert wait_for_exit(children, EXIT_TIMEOUT) == [], "the dev server outlived its supervisor"
    # The port is free again for the next `sioctl dev`.
    with socket.socket() as probe:
        # As a server binds: connections in TIME_WAIT do not count, a listener would.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", dev.port))
        probe.listen(1)
