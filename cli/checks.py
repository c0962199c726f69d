"""``sioctl start --check-config``: load the config and import the app as a worker would,
say OK or why not, and start nothing (gunicorn's --check-config)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable

from sioctl.cluster import engine_probe
from sioctl.cluster.settings import Settings
from sioctl.cluster.worker_process import worker_module

from . import daemon

# How long importing the app may take.
CHECK_TIMEOUT = 120.0


def check_app(settings: Settings, say: Callable[[str], None]) -> int:
    """Import the app of ``settings`` in a worker of its engine (``--check``: no listener, no
    master); returns 0 when it would serve, else 1. The worker itself prints a boot error (one
    line and the app's frames); OK goes to stdout."""
    try:
        engine, why = engine_probe.resolve(settings)
    except engine_probe.ProbeError as exc:
        say(f"error: {exc}")
        return 1
    checked = dataclasses.replace(settings, worker_class=engine)
    command = [sys.executable, "-m", worker_module(checked), "--check"]
    try:
        result = subprocess.run(command, env=daemon.child_environ(checked, os.environ),
                                cwd=checked.chdir or None, stdin=subprocess.DEVNULL,
                                timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        say(f"error: importing {settings.app} took more than {CHECK_TIMEOUT:g}s")
        return 1
    if result.returncode != 0:
        return 1
    print(f"OK: {settings.app} loads on the {engine} engine ({why})", flush=True)
    return 0

