"""Looking at and signalling processes we did not start (a master found through its run dir)."""

from __future__ import annotations

import os
import signal
import time


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The state follows the parenthesised command name, which may itself contain spaces.
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def looks_like_sioctl(pid: int) -> bool:
    """True if ``pid``'s command line mentions sioctl; guards against signalling a reused pid."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"sioctl" in f.read()
    except OSError:
        # No /proc (or not allowed to read it): trust the pidfile.
        return True


def wait_gone(pid: int, timeout: float, interval: float = 0.1) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; True if it did."""
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def send(pid: int, signum: signal.Signals) -> bool:
    """Send ``signum``; False if the process was already gone."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True
