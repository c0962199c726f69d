"""Logging set-up for the master: one handler on the ``sioctl`` logger, timestamps and pid."""

from __future__ import annotations

import logging
import sys

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
