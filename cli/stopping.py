"""Finding running clusters through their run directories, and stopping them."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sioctl.cluster import control
from sioctl.cluster.settings import default

from . import procs, rundir

# A graceful stop may take the default graceful timeout; then a little for the master to exit.
STOP_SLACK = 5.0
DEFAULT_STOP_TIMEOUT = default("graceful_timeout") + STOP_SLACK


@dataclass
class Found:
    """One title under the base: its status reply if its master answered, else what is known."""

    title: str
    reply: dict[str, Any] | None
    pid: int | None

    @property
    def answering(self) -> bool:
        return self.reply is not None


def probe(base: str, title: str) -> Found | None:
    """What is known about ``title`` under ``base``; None if it has no run files at all."""
    sock = rundir.control_socket(base, title)
    pidfile = rundir.master_pidfile(base, title)
    if not os.path.exists(sock) and not os.path.exists(pidfile):
        return None
    reply = None
    if os.path.exists(sock):
        with contextlib.suppress(control.ControlError):
            reply = control.request(sock, {"cmd": "status"})
    pid = reply.get("pid") if reply else None
    if not isinstance(pid, int):
        pid = rundir.read_pidfile(pidfile)
    return Found(title, reply, pid)


def remove_stale(base: str, title: str) -> list[str]:
    """Delete the control socket and pidfile of a dead master; returns what was removed."""
    removed = []
    for path in (rundir.control_socket(base, title), rundir.master_pidfile(base, title)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(os.path.basename(path))
    return removed


def stale_message(base: str, found: Found) -> str | None:
    """If ``found``'s master is gone: remove its files and say so; None if it may be alive."""
    if found.answering or (found.pid is not None and procs.is_alive(found.pid)):
        return None
    removed = remove_stale(base, found.title)
    why = f"pid {found.pid} is not running" if found.pid else "nobody answers"
    if not removed:
        return f"sioctl: '{found.title}' is not running ({why})"
    return f"sioctl: removed stale {' and '.join(removed)} of '{found.title}' ({why})"


def stop_timeout(found: Found) -> float:
    """How long to wait for ``found`` to stop: its own graceful timeout, plus slack."""
    graceful = (found.reply or {}).get("graceful_timeout")
    if isinstance(graceful, (int, float)) and graceful >= 0:
        return float(graceful) + STOP_SLACK
    return DEFAULT_STOP_TIMEOUT


def wait_or_kill(pid: int, timeout: float, say: Callable[[str], None], what: str) -> None:
    """Wait for ``pid`` to exit; SIGKILL it after ``timeout`` seconds and say so."""
    if procs.wait_gone(pid, timeout):
        return
    if procs.send(pid, signal.SIGKILL):
        say(f"sioctl: {what} (pid {pid}) did not stop within {timeout:g}s; killed it (SIGKILL)")
    procs.wait_gone(pid, 5.0)


def stop_found(
    base: str, found: Found, *, graceful: bool, timeout: float, say: Callable[[str], None]
) -> bool:
    """Stop one cluster that is (or may be) alive; True if it was stopped."""
    pid = found.pid
    sock = rundir.control_socket(base, found.title)
    if found.answering:
        try:
            control.request(sock, {"cmd": "stop", "graceful": graceful})
        except control.ControlError:
            # It may have exited between the status and the stop request.
            pass
    elif pid is not None and procs.looks_like_sioctl(pid):
        # Alive but not answering (busy or wedged): fall back to signals, as gunicorn is run.
        say(f"sioctl: '{found.title}' does not answer on its control socket; sending a signal")
        procs.send(pid, signal.SIGTERM if graceful else signal.SIGQUIT)
    else:
        say(f"sioctl: '{found.title}': pid {pid} is not a sioctl process; leaving it alone")
        return False
    if pid is not None:
        wait_or_kill(pid, timeout, say, f"'{found.title}'")
        remove_stale(base, found.title)
    say(f"sioctl: {found.title} stopped" + (f" (pid {pid})" if pid else ""))
    return True


def stop_pidfile(path: str, *, graceful: bool, timeout: float, say: Callable[[str], None]) -> bool:
    """Stop the process named in pidfile ``path``; True if one was running and was stopped."""
    pid = rundir.read_pidfile(path)
    if pid is None:
        say(f"sioctl: no pid in {path}")
        return False
    if not procs.is_alive(pid):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        say(f"sioctl: removed stale pidfile {path} (pid {pid} is not running)")
        return False
    if not procs.looks_like_sioctl(pid):
        say(f"sioctl: pid {pid} from {path} is not a sioctl process; leaving it alone")
        return False
    procs.send(pid, signal.SIGTERM if graceful else signal.SIGQUIT)
    wait_or_kill(pid, timeout, say, "master")
    say(f"sioctl: stopped pid {pid}")
    return True
