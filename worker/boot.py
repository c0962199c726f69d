"""What every worker engine does the same way before it serves: the command line, the logging,
the working directory and environment, and reporting a boot error (to the master over the
channel, or on stderr when standalone).

Engine-free: neither eventlet nor asyncio is imported here, so the eventlet worker
(:mod:`sioctl.worker.main`), the asyncio worker (:mod:`sioctl.worker.aio.main`) and the engine
probe (:mod:`sioctl.worker.probe`) share it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Protocol

from sioctl.cluster import channel as master_channel
from sioctl.cluster import proctitle
from sioctl.cluster.logs import reopen_daemon_output, reopen_log_files
from sioctl.cluster.settings import SETTINGS_ENV, SLOT_ENV, WORKER_BOOT_ERROR, Settings
from sioctl.worker.errors import BootError

LOG_FORMAT = "[%(asctime)s] [{who} pid %(process)d] %(levelname)s %(message)s"
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S"
# How many of the frames that raised a boot error are shown with it (the innermost ones).
BOOT_FRAMES = 3


class Sender(Protocol):
    """The worker's end of the master channel, as far as reporting needs it."""

    def send(self, message: dict[str, Any]) -> None: ...


@dataclass
class Options:
    channel_fd: int | None
    slot: int | None
    listen: str | None
    # Load the app, then exit 0 (sioctl start --check-config); a boot error exits as always.
    check: bool = False


def parse_args(argv: list[str] | None = None, prog: str = "python -m sioctl.worker") -> Options:
    """The command line; exits with status 2 and a usage line when it is wrong."""
    parser = argparse.ArgumentParser(prog=prog)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--channel-fd", type=int, help="the master channel's fd (cluster mode)")
    mode.add_argument("--listen", metavar="HOST:PORT", help="bind and serve alone")
    mode.add_argument("--check", action="store_true",
                      help="load the app as a worker would, then exit 0 (--check-config)")
    parser.add_argument("--slot", type=int, help="this worker's slot number (cluster mode)")
    args = parser.parse_args(argv)
    return Options(args.channel_fd, args.slot, args.listen, args.check)


def read_settings() -> Settings:
    """The settings the master (or ``sioctl dev``) passed; raises BootError saying what is
    wrong with SIOCTL_SETTINGS."""
    try:
        return Settings.from_environ()
    except (KeyError, ValueError, TypeError) as exc:
        detail = "not set" if isinstance(exc, KeyError) else f"invalid ({exc})"
        raise BootError(f"{SETTINGS_ENV} is {detail}") from exc


def setup_logging(settings: Settings, slot: int | None) -> logging.Logger:
    """Configure python logging (stderr or settings.errorlog) and return the worker's logger."""
    who = "worker" if slot is None else f"worker {slot}"
    if settings.errorlog and settings.errorlog != "-":
        handler: logging.Handler = logging.FileHandler(settings.errorlog)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT.format(who=who), LOG_DATEFMT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = logging.getLevelName(str(settings.loglevel).upper())
    root.setLevel(level if isinstance(level, int) else logging.INFO)
    return logging.getLogger("sioctl.worker")


def reopen_logs(settings: Settings, access_logger: Any, logger: logging.Logger) -> None:
    """USR1 (sent by the master after a logrotate): reopen the error log (or ``--daemon``'s
    output file) and, if there is one, the access log (gunicorn's Logger reopens its own
    files), by name."""
    reopened = reopen_log_files(logging.getLogger())
    daemon_log = reopen_daemon_output(settings)
    if daemon_log:
        reopened.append(daemon_log)
    if access_logger is not None:
        access_logger.reopen_files()
        reopened.append(str(access_logger.cfg.accesslog))
    logger.info("USR1: reopened %s", ", ".join(reopened) or "no log file")


def name_process(settings: Settings, slot: int | None) -> None:
    """ps shows ``sioctl: worker SLOT [NAME]`` (cluster/proctitle.py)."""
    role = "worker" if slot is None else f"worker {slot}"
    proctitle.set_title(role, settings.proc_name or settings.title)


def claims_owner(settings: Settings, hostname: str) -> str:
    """Who holds this worker's socket id claims in Redis (an app directory's
    ``io.generate_id``): host, cluster title and slot (``dev`` when standalone)."""
    return f"{hostname}/{settings.title}/{os.environ.get(SLOT_ENV, 'dev')}"


def prepare_environment(settings: Settings) -> None:
    """chdir to settings.chdir (and import from there) and apply settings.raw_env."""
    if settings.chdir:
        try:
            os.chdir(settings.chdir)
        except OSError as exc:
            raise BootError(f"cannot chdir to {settings.chdir!r}: {exc.strerror}") from exc
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    for item in settings.raw_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BootError(f"raw_env entry {item!r} is not KEY=VALUE")
        os.environ[key] = value


def quiet_library_handlers() -> None:
    """Drop the bare stderr handlers python-socketio/engineio add to their default loggers.

    Their records also reach our root handler, so each line would be printed twice, once
    without the worker's prefix.
    """
    for name in ("engineio.server", "socketio.server"):
        library_logger = logging.getLogger(name)
        for handler in list(library_logger.handlers):
            if type(handler) is logging.StreamHandler and handler.stream is sys.stderr:
                library_logger.removeHandler(handler)


def unforeseen(exc: BaseException) -> BootError:
    """A bug or something unforeseen during the boot, still as one line for the user."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return BootError(f"worker failed to start: {type(exc).__name__}: {text}".rstrip(": "))


def exit_now(code: int = 0) -> None:
    """Leave at once, without waiting for threads, green or not (flushes the logs first)."""
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _own_dirs() -> tuple[str, ...]:
    """The folders of sioctl's own packages and importlib's: their frames are not the app's."""
    import importlib

    import sioctl
    from sioctl import cli, cluster, worker

    return tuple(os.path.join(os.path.dirname(os.path.abspath(m.__file__ or "")), "")
                 for m in (sioctl, cli, cluster, worker, importlib))


def where_raised(error: BaseException, limit: int = BOOT_FRAMES) -> list[str]:
    """The innermost ``limit`` frames of the app's code (or a library's) that raised the
    exception behind ``error``, one line each: ``path:line in function: code``.

    sioctl's own frames and importlib's are left out: a user looks for the line of their app
    (``os.environ["DATABASE_URL"]``) that failed. Empty when nothing outside them raised.
    """
    cause = error.__cause__ or error.__context__ or error
    own = _own_dirs()
    frames = [
        frame for frame in traceback.extract_tb(cause.__traceback__)
        if not frame.filename.startswith("<") and not frame.filename.startswith(own)
    ]
    here = os.path.join(os.getcwd(), "")
    lines = []
    for frame in frames[-limit:]:
        path = frame.filename
        shown = path[len(here):] if path.startswith(here) else path
        code = f": {frame.line.strip()}" if frame.line else ""
        lines.append(f"{shown}:{frame.lineno} in {frame.name}{code}")
    return lines


def report_boot_error(
    error: BootError, channel: Sender | None, logger: logging.Logger
) -> int:
    """Tell the master (or stderr, standalone) why the worker cannot start: one line, and
    the frames of the app that raised it (:func:`where_raised`); returns the exit status for
    it (WORKER_BOOT_ERROR)."""
    logger.debug("boot failed", exc_info=True)
    message = str(error).strip().splitlines()[0] if str(error).strip() else "boot failed"
    frames = where_raised(error)
    if channel is not None:
        try:
            channel.send({"t": master_channel.BOOT_ERROR, "message": message, "frames": frames})
        except OSError:
            pass
    else:
        print(f"error: {message}", file=sys.stderr, flush=True)
        for frame in frames:
            print(f"  at {frame}", file=sys.stderr, flush=True)
    return WORKER_BOOT_ERROR
