"""Resolve ``worker_class = "auto"`` to the engine the app needs, before any worker starts.

The eventlet worker must monkey-patch before it imports the app, so the engine cannot be
decided inside the worker. The master runs ``python -m sioctl.worker.probe`` once (a fresh
interpreter that imports the app unpatched; the master itself never imports the app, nor
eventlet) and starts every worker on the answer; ``-k`` skips this. The answer holds for the
master's life: a HUP restarts workers on the same engine (changing an app from sync to async
needs a restart of the cluster).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .settings import ASYNCIO, AUTO, EVENTLET, SETTINGS_ENV, Settings

# How long the probe may take to import the app.
PROBE_TIMEOUT = 60.0


class ProbeError(Exception):
    """The app cannot be served; the message is one line for the user."""


def resolve(settings: Settings, timeout: float = PROBE_TIMEOUT) -> tuple[str, str]:
    """(engine, why) for ``settings``: the engine -k named, else the one the probe found.

    Raises ProbeError when the app holds no server, or the probe dies or hangs.
    """
    if settings.worker_class != AUTO:
        return settings.worker_class, f"-k {settings.worker_class}"
    read_end, write_end = os.pipe()
    env = dict(os.environ)
    env[SETTINGS_ENV] = settings.to_json()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "sioctl.worker.probe", "--result-fd", str(write_end)],
            pass_fds=(write_end,), env=env, cwd=settings.chdir or None,
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        raise ProbeError(f"cannot start the engine probe: {exc}") from exc
    os.close(write_end)
    try:
        with os.fdopen(read_end) as result:
            process.wait(timeout)
            line = result.readline()
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise ProbeError(f"importing the app took more than {timeout:g}s (engine probe); "
                         "pass -k asyncio or -k eventlet") from None
    try:
        answer = json.loads(line)
    except ValueError:
        raise ProbeError(f"the engine probe exited with status {process.returncode} without "
                         "an answer; pass -k asyncio or -k eventlet") from None
    if "error" in answer:
        raise ProbeError(str(answer["error"]))
    engine = answer.get("engine")
    if engine not in (ASYNCIO, EVENTLET):
        raise ProbeError(f"the engine probe answered {line.strip()!r}")
    return engine, str(answer.get("what", ""))
