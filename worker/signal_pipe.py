"""A signal turned into a readable pipe, for green threads to wait on.

A signal handler may run in the middle of any green thread, or inside the hub's own loop, where
nothing may block or switch: the handler only writes a byte to a pipe with the original (not the
green) ``os.write``, and a green thread waiting on the pipe does the work.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import eventlet.hubs
from eventlet.patcher import original


def signal_pipe(signum: int) -> int:
    """Install a handler for ``signum``; returns the fd that becomes readable on each signal."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    # The green os.write would try to switch to the hub, which a handler running inside the
    # hub's own loop must not do.
    real_os: Any = original("os")

    def on_signal(number: int, frame: Any) -> None:
        try:
            real_os.write(write_fd, b"S")
        except OSError:
            pass  # the pipe is full: a wake-up is already waiting

    signal.signal(signum, on_signal)
    return read_fd


def wait_for_signal(read_fd: int) -> None:
    """Block this green thread until the signal behind ``read_fd`` (see signal_pipe) arrives."""
    while True:
        eventlet.hubs.trampoline(read_fd, read=True)
        try:
            if os.read(read_fd, 64):
                return
        except BlockingIOError:
            continue
