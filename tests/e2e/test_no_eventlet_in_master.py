"""The master never imports eventlet, and its workers are fresh interpreters, not forks.

eventlet hooks fork() in any process that imported it, so the supervising side (cluster/, cli/)
must stay free of it. Two routes: what importing those packages (and resolving a start command)
pulls into a fresh interpreter, and what a running master has mapped: eventlet needs greenlet's
C extension, whose shared object shows in /proc/<pid>/maps of any process that imported it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from tests.support.paths import REPO_ROOT

GREEN_PACKAGES = ("eventlet", "greenlet")
# The asyncio engine's: the master must not load them either (nor the engine's own modules).
ASYNC_ENGINE_PACKAGES = ("uvicorn", "uvloop", "httptools", "websockets")
ENGINE_PACKAGES = GREEN_PACKAGES + ASYNC_ENGINE_PACKAGES

# Imports every module of sioctl.cluster and sioctl.cli, resolves a start command the way
# `sioctl start --print-config` does, then reports the green modules loaded.
IMPORT_EVERYTHING = """
import contextlib, io, json, pkgutil, sys, importlib
import sioctl.cluster, sioctl.cli
for package in (sioctl.cluster, sioctl.cli):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
from sioctl.cli.main import cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    cli.main(["start", "tests.apps.chat:sio", "--sticky", "-w", "2", "-b", "127.0.0.1:7001",
              "--print-config"], prog_name="sioctl", standalone_mode=False)
json.loads(out.getvalue())
# An app directory: the CLI reads its config files too.
out = io.StringIO()
with contextlib.redirect_stdout(out):
    cli.main(["start", "examples/chat", "-w", "2", "--print-config"], prog_name="sioctl",
             standalone_mode=False)
assert json.loads(out.getvalue())["app"].endswith("chat")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {green}
                        or m.startswith("sioctl.worker.aio"))))
"""

# The same report after importing the worker: proves the check sees eventlet when it is there.
IMPORT_WORKER = """
import json, sys
import sioctl.worker.main
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {green})))
"""


def green_modules_after(script: str, packages: tuple[str, ...] = GREEN_PACKAGES) -> list[str]:
    """The modules of ``packages`` (eventlet/greenlet by default) a fresh interpreter holds
    after running ``script``."""
    result = subprocess.run(
        [sys.executable, "-c", script.format(green=repr(set(packages)))],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(modules, list)
    return modules


# And after importing the asyncio worker: the check sees uvicorn when it is there.
IMPORT_AIO_WORKER = """
import json, sys
import sioctl.worker.aio.main
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {green})))
"""


def test_master_side_imports_no_eventlet() -> None:
    assert green_modules_after(IMPORT_EVERYTHING) == []
    assert "eventlet" in green_modules_after(IMPORT_WORKER)


def test_master_side_imports_no_asyncio_engine() -> None:
    # IMPORT_EVERYTHING also reports sioctl.worker.aio.* modules.
    assert green_modules_after(IMPORT_EVERYTHING, ENGINE_PACKAGES) == []
    loaded = green_modules_after(IMPORT_AIO_WORKER, ENGINE_PACKAGES)
    assert "uvicorn" in loaded and "eventlet" not in loaded, loaded


def mapped_files(pid: int) -> set[str]:
    """The files mapped into ``pid``'s memory."""
    with open(f"/proc/{pid}/maps") as f:
        return {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}


def maps_greenlet(pid: int) -> bool:
    return any("greenlet" in path for path in mapped_files(pid))


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [part.decode() for part in f.read().split(b"\0") if part]


def exec_environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` was exec'd with (a fork would show its parent's block)."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [part.decode(errors="replace").partition("=") for part in f.read().split(b"\0")]
    return {key: value for key, _, value in pairs if key}


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_running_master_has_no_eventlet_and_workers_are_fresh_interpreters(
    start_cluster: Callable[..., Any],
) -> None:
    cluster = start_cluster(workers=2)
    status = cluster.status()
    # `sioctl start` in the foreground runs the master in the process we started.
    assert int(status["pid"]) == cluster.pid
    workers = cluster.worker_pids()
    assert sorted(workers) == [0, 1]
    for slot, pid in workers.items():
        assert maps_greenlet(pid), f"worker {pid} shows no greenlet: the check cannot see it"
        assert parent_of(pid) == cluster.pid
        # Started with exec, not a fork of the master: its own environment block (the command
        # line is its process title now).
        assert exec_environ(pid)["SIOCTL_WORKER_SLOT"] == str(slot)
        assert cmdline(pid)[0] == f"sioctl: worker {slot} [{cluster.title}]"
    assert not maps_greenlet(cluster.pid), "the master has loaded greenlet (eventlet)"
    assert "SIOCTL_WORKER_SLOT" not in exec_environ(cluster.pid)
    assert cmdline(cluster.pid)[0] == f"sioctl: master [{cluster.title}]"


def test_running_master_of_an_asyncio_cluster_loads_no_engine(
    start_cluster: Callable[..., Any],
) -> None:
    cluster = start_cluster(app="tests.apps.asyncchat:app", workers=2)
    for slot, pid in cluster.worker_pids().items():
        # Started with exec (its own environment block), as the asyncio engine's worker.
        assert exec_environ(pid)["SIOCTL_WORKER_SLOT"] == str(slot)
        assert cluster.status()["engine"] == "asyncio"
        assert not maps_greenlet(pid), f"asyncio worker {pid} has loaded greenlet (eventlet)"
    master = mapped_files(cluster.pid)
    assert not any(name in path for path in master for name in ("greenlet", "uvloop", "httptools"))
