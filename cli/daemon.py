"""Starting a master in the background and waiting for it to say it is ready.

The handshake: the CLI makes a pipe and starts ``python -m sioctl.cluster --ready-fd N`` (the
settings in SIOCTL_SETTINGS) in a new session with only the pipe's write end inherited (as fd N).
The master writes one line to it, ``ready`` once every worker serves or ``error: <why>`` when it
gives up, and closes it. End-of-file without a line means the master died first; its log says why.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from sioctl.cluster.settings import SETTINGS_ENV, Settings

from . import rundir
from .rebuild import RELOAD_ENV, Recipe

# Extra time, beyond the graceful timeout, a master gets to report that it is ready.
READY_SLACK = 60.0


@dataclass
class Outcome:
    """What the background master said: ok, and a one-line message for the user."""

    ok: bool
    pid: int
    message: str
    log_path: str


def log_path(settings: Settings) -> str:
    """Where a background master's stdout and stderr go."""
    if settings.errorlog and settings.errorlog != "-":
        return settings.errorlog
    return os.path.join(settings.run_dir, rundir.DAEMON_LOG)


def command(ready_fd: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sioctl.cluster",
        "--ready-fd",
        str(ready_fd),
    ]


def child_environ(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """The environment for a master or standalone worker child: ``base`` plus the settings
    (SIOCTL_SETTINGS: kept off the command line, where a Redis password would show) and
    ``--env`` as SIOCTL_ENV for the app."""
    env = dict(base)
    env[SETTINGS_ENV] = settings.to_json()
    if settings.env:
        env["SIOCTL_ENV"] = settings.env
    # Process titles leave the environment block in place (cluster/proctitle.py); the child
    # imports gunicorn, and with it setproctitle, before it names itself.
    env.setdefault("SPT_NOENV", "1")
    return env


def _with_recipe(env: dict[str, str], recipe: Recipe | None) -> dict[str, str]:
    if recipe is not None:
        env[RELOAD_ENV] = recipe.to_json()
    return env


def read_line(fd: int, deadline: float, alive: subprocess.Popen[bytes] | None = None) -> str | None:
    """The first line written to ``fd`` before ``deadline``.

    Returns None at end-of-file, or when ``alive`` has exited without writing; raises
    TimeoutError at the deadline. A partial line at end-of-file is returned as is.
    """
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if selector.select(min(left, 0.5)):
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
            elif alive is not None and alive.poll() is not None:
                # A worker that inherited the pipe would hide the master's death from us.
                break
    text = data.decode(errors="replace").split("\n", 1)[0].strip()
    return text or None


def tail(path: str, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of ``path`` ([] if unreadable)."""
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n") for line in deque(f, maxlen=lines)]
    except OSError:
        return []


def start(settings: Settings, recipe: Recipe | None = None) -> Outcome:
    """Start the master in the background and wait (bounded) for its first word; with
    ``recipe``, its HUP reads the config files again (passed in SIOCTL_RELOAD)."""
    os.makedirs(settings.run_dir, mode=0o700, exist_ok=True)
    path = log_path(settings)
    read_end, write_end = os.pipe()
    try:
        with open(os.devnull, "rb") as devnull, open(path, "ab") as log:
            proc = subprocess.Popen(
                command(write_end),
                stdin=devnull,
                stdout=log,
                stderr=log,
                cwd=settings.chdir,
                env=_with_recipe(child_environ(settings, dict(os.environ)), recipe),
                pass_fds=(write_end,),
                start_new_session=True,
            )
        os.close(write_end)
        write_end = -1
        timeout = settings.graceful_timeout + READY_SLACK
        try:
            line = read_line(read_end, time.monotonic() + timeout, alive=proc)
        except TimeoutError:
            proc.terminate()
            return Outcome(False, proc.pid,
                           f"the master did not report ready within {timeout:g}s; stopped it",
                           path)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    if line == "ready":
        return Outcome(True, proc.pid, "ready", path)
    if line and line.startswith("error:"):
        return Outcome(False, proc.pid, line[len("error:"):].strip(), path)
    code = proc.poll()
    status = f" (exit status {code})" if code is not None else ""
    return Outcome(False, proc.pid, f"the master exited before it was ready{status}", path)
