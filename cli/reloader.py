"""``sioctl dev``: run one child server and restart it whenever a Python file changes.

Polling keeps this stdlib-only and works the same on every filesystem (bind mounts, NFS).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from types import FrameType

from sioctl.cluster.lifetime import die_with_parent

# Directories that never hold the app's own code, or hold a great deal of someone else's.
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", "dist-packages", "venv",
                       "env", "build", "dist"})

Snapshot = dict[str, float]


def _skip(parent: str, name: str) -> bool:
    if name.startswith(".") or name in SKIP_DIRS:
        return True
    # A virtualenv under any name.
    return os.path.exists(os.path.join(parent, name, "pyvenv.cfg"))


def python_files(root: str) -> Iterator[str]:
    """Every ``*.py`` file under ``root``, skipping VCS, virtualenv and cache directories."""
    for parent, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not _skip(parent, d)]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(parent, name)


def snapshot(root: str) -> Snapshot:
    """Modification times of the Python files under ``root``."""
    times: Snapshot = {}
    for path in python_files(root):
        try:
            times[path] = os.stat(path).st_mtime
        except OSError:
            continue  # removed between listing and stat
    return times


def changes(old: Snapshot, new: Snapshot) -> list[str]:
    """Files added, removed or modified between two snapshots, sorted."""
    return sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))


class _Stop(Exception):
    """A signal asked the supervisor to stop."""


def stop_child(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM ``proc``, wait up to ``timeout`` seconds, then SIGKILL it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def supervise(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    reload: bool,
    stop_timeout: float,
    log: Callable[[str], None],
    poll_interval: float = 1.0,
    relaunch: Callable[[], list[str] | None] | None = None,
) -> int:
    """Run ``argv`` until a signal (SIGINT, SIGTERM, SIGHUP) arrives; returns the exit status.

    With ``reload`` the child is restarted when a ``*.py`` file under ``cwd`` changes, and a
    child that exits (a boot error, say) is started again at the next change. Without it, the
    child's exit status is returned. A signal stops the child and returns 0. ``relaunch``, when
    given, makes the command of each restart (called before the old child stops; None: start
    nothing and wait for the next change).
    """

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, on_signal) for s in handled}
    proc: subprocess.Popen[bytes] | None = None

    def launch(command: list[str] | None) -> subprocess.Popen[bytes] | None:
        # A session of its own: Ctrl-C reaches only us, and we stop the child in order.
        # If the supervisor is killed outright, its server must not live on holding the port.
        if command is None:
            return None
        return subprocess.Popen(command, env=dict(env), cwd=cwd, preexec_fn=die_with_parent())

    try:
        files = snapshot(cwd) if reload else {}
        proc = launch(argv)
        while True:
            if proc is not None:
                try:
                    code = proc.wait(poll_interval)
                except subprocess.TimeoutExpired:
                    pass
                else:
                    if not reload:
                        return code
                    log(f"sioctl dev: the server exited with status {code}; "
                        "waiting for a file to change")
                    proc = None
            else:
                time.sleep(poll_interval)
            if reload:
                current = snapshot(cwd)
                changed = changes(files, current)
                files = current
                if changed:
                    more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
                    log(f"sioctl dev: {os.path.relpath(changed[0], cwd)}{more} changed, restarting")
                    command = relaunch() if relaunch is not None else argv
                    stop_child(proc, stop_timeout)
                    proc = launch(command)
    except _Stop:
        # Ignore a second Ctrl-C while the child shuts down; the wait is bounded anyway.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_child(proc, stop_timeout)
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
