"""Children that die with the process that started them (workers, redis-server, dev servers),
and how their end is told."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for subprocess.Popen: the child gets its own session (so a terminal's
    Ctrl-C reaches only its parent, which decides how children stop) and is SIGKILLed by Linux
    when the parent dies. None where prctl is unavailable (not Linux).

    libc is loaded here, before the fork, so the child only makes system calls. The kernel
    signals the child when the parent *thread* that forked it exits; sioctl's parents are
    single-threaded.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        os.setsid()
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody would signal us.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def describe_exit(status: int) -> str:
    """``exited with status 1`` / ``was killed by SIGKILL`` for a Popen return code."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"was killed by {name}"
    return f"exited with status {status}"
