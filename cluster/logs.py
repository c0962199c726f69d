"""Logging set-up for the master (one handler on the ``sioctl`` logger, timestamps and pid), and
reopening log files after a rotation (``USR1``, master and workers)."""

from __future__ import annotations

import io
import logging
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
