"""Logging set-up for the master (one handler on the ``sioctl`` logger, timestamps and pid), and
reopening log files after a rotation (``USR1``, master and workers)."""

from __future__ import annotations

import io
import logging
import os
import sys
from typing import cast

from .settings import Settings

FORMAT = "[%(asctime)s] [{role} %(process)d] %(levelname)s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def configure_logging(settings: Settings, role: str) -> logging.Logger:
    """Send the ``sioctl`` logger to settings.errorlog ("-" is stderr) at settings.loglevel.

    Replaces any handler an earlier call installed, so calling it again (a test, a reload) does
    not duplicate lines.
    """
    logger = logging.getLogger("sioctl")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handler: logging.Handler
    if settings.errorlog in ("-", "", None):
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(settings.errorlog)
    handler.setFormatter(logging.Formatter(FORMAT.format(role=role), DATE_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(settings.loglevel.upper())
    logger.propagate = False
    return logger


def reopen_log_files(*loggers: logging.Logger) -> list[str]:
    """Reopen every file the handlers of ``loggers`` write to, by name (``USR1``, after a
    logrotate renamed them); returns the paths reopened.

    A rotated file is only renamed: without this, lines keep going to the renamed file. Stream
    handlers (stderr) are left alone. ``setStream`` swaps the file under the handler's lock, so
    a line logged meanwhile goes whole to the old file or to the new one.
    """
    reopened = []
    for logger in loggers:
        for handler in logger.handlers:
            if not isinstance(handler, logging.FileHandler):
                continue
            # Text mode, as FileHandler opens it (its mode is "a" unless told otherwise).
            stream = cast(io.TextIOWrapper, open(handler.baseFilename, handler.mode,
                                                 encoding=handler.encoding,
                                                 errors=handler.errors))
            old = handler.setStream(stream)
            if old is not None:
                old.close()
            reopened.append(handler.baseFilename)
    return reopened


# What `sioctl start --daemon` names the file it points a background master's stdout and
# stderr at when there is no --error-logfile (cli/rundir.DAEMON_LOG).
DAEMON_LOG = "sioctl.log"


def reopen_daemon_output(settings: Settings) -> str | None:
    """With ``--daemon`` and no ``--error-logfile``, stdout and stderr (the master's, and the
    workers' they inherit) are ``RUN_DIR/sioctl.log``: reopen that file onto both (USR1), so
    it can be rotated like a named log. Returns its path, or None when the output is not it."""
    if not settings.daemon or settings.errorlog not in ("-", "", None):
        return None
    path = os.path.join(settings.run_dir, DAEMON_LOG)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        for stream, target in ((sys.stdout, 1), (sys.stderr, 2)):
            stream.flush()
            os.dup2(fd, target)
    finally:
        os.close(fd)
    return path
