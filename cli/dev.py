"""What ``sioctl dev`` runs: settings for a local server and the child command serving them."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping

from sioctl.cluster import engine_probe
from sioctl.cluster.settings import DEFAULT_PORT, Settings
from sioctl.cluster.worker_process import worker_module

from .config import FileConfig, build_settings

# Only this machine: a development server is not for others to reach.
DEFAULT_BIND = f"127.0.0.1:{DEFAULT_PORT}"
DEFAULT_ENV = "local"
# Restarts should be quick: connections get this long to finish before the old server goes.
GRACEFUL_TIMEOUT = 3.0


def dev_settings(
    *,
    app: str | None,
    bind: str,
    workers: int,
    redis: str | None,
    redis_channel: str | None,
    env_name: str,
    run_dir: str | None,
    cwd: str,
    environ: Mapping[str, str],
    allow_eio3: bool | None = None,
    worker_class: str | None = None,
    ws_per_message_deflate: bool | None = None,
) -> Settings:
    """Settings for a development server: debug logging, an access log on stdout.

    Raises click.BadParameter / click.UsageError with one line, as ``start`` does.
    """
    options = {
        "app": app,
        "bind": (bind,),
        "workers": workers,
        "redis": redis,
        "redis_channel": redis_channel,
        "env": env_name,
        "run_dir": run_dir,
        "log_level": "debug",
        "access_logfile": "-",
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "daemon": False,
        "allow_eio3": allow_eio3,
        "worker_class": worker_class,
        "ws_per_message_deflate": ws_per_message_deflate,
    }
    return build_settings(options, FileConfig(), cwd=cwd, environ=environ, cpu_count=1)


def child_command(settings: Settings) -> list[str]:
    """One standalone worker for one worker, else the sticky cluster's master.

    A standalone worker needs its engine settled first (the master does it for a cluster):
    the probe runs here (unless ``-k`` named the engine), raising ProbeError when the app holds
    no server. ``dev`` calls this again for every restart, so an app turned from sync to async
    (or back) while it runs is served by the right engine after the next save.
    """
    if settings.workers == 1:
        engine, _why = engine_probe.resolve(settings)
        chosen = dataclasses.replace(settings, worker_class=engine)
        return [sys.executable, "-m", worker_module(chosen), "--listen", settings.binds[0]]
    return [sys.executable, "-m", "sioctl.cluster"]


def restart_command(settings: Settings, log: Callable[[str], None]) -> list[str] | None:
    """The child command of a restart, or None (after saying why) when the app cannot be
    served now: ``dev`` then waits for the next change, as after a broken edit."""
    try:
        return child_command(settings)
    except engine_probe.ProbeError as exc:
        log(f"sioctl dev: {exc}; waiting for a file to change")
        return None


def stop_timeout(settings: Settings) -> float:
    """How long a restart waits for the old server before killing it."""
    return settings.graceful_timeout + 5.0
