"""What a master needs to build its settings again on HUP (``sioctl reload``): the config file,
the options given at start and the directory they were given in.

``sioctl start`` hands the master a :class:`Recipe` (in the foreground as an object, to a
background master as JSON in ``SIOCTL_RELOAD``); on HUP the master calls :func:`rebuild`, which
reads the gunicorn config file and the app directory's config again and lays the start's options
over them, as at start: an option given on the command line (or a ``SIOCTL_*`` variable) still
wins over the file.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import click

from sioctl.cluster.settings import Settings

from . import config

RELOAD_ENV = "SIOCTL_RELOAD"


class RebuildError(Exception):
    """The config cannot be read again; the message is one line for the log."""


@dataclass
class Recipe:
    """The inputs of ``sioctl start``'s settings: ``config_file`` as given (None: the
    directory's gunicorn.conf.py, looked for again), click's ``options``, and ``cwd``."""

    config_file: str | None
    options: dict[str, Any] = field(default_factory=dict)
    cwd: str = ""

    @classmethod
    def of(cls, config_file: str | None, options: dict[str, Any], cwd: str) -> Recipe:
        """The recipe of a start; a relative config path is pinned to ``cwd`` (the master
        changes directory)."""
        if config_file and not config_file.startswith("python:"):
            path = config_file[len("file:"):] if config_file.startswith("file:") else config_file
            config_file = os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))
        # JSON-able: click gives tuples for repeatable options.
        plain = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
        return cls(config_file, plain, cwd)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        data = json.loads(text)
        return cls(data.get("config_file"), dict(data.get("options") or {}), data.get("cwd", ""))


def rebuild(recipe: Recipe) -> Settings:
    """The settings ``recipe`` gives now (config file and app directory read again).

    Raises RebuildError with one line (what click would have said at start); what the readers
    print meanwhile (a broken file's traceback, notes) is kept out of the master's log.
    """
    location = recipe.config_file or config.default_config_file(recipe.cwd)
    if location and location.startswith("python:"):
        # gunicorn imports the module: without this, the copy imported at start would do.
        sys.modules.pop(location[len("python:"):], None)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            file_config = (config.load_config_file(location) if location
                           else config.FileConfig())
            return config.build_settings(recipe.options, file_config, cwd=recipe.cwd,
                                         environ=os.environ, cpu_count=os.cpu_count())
    except click.ClickException as exc:
        raise RebuildError(_one_line(exc.format_message(), captured.getvalue(),
                                     location or "")) from None
    except Exception as exc:  # anything the config files raise: still one line
        raise RebuildError(f"{type(exc).__name__}: {exc}") from None


def _one_line(message: str, printed: str, location: str) -> str:
    """``message`` with the traceback the config reader printed (and we kept out of the log)
    told in a few words: its last line and where in the file it happened."""
    lines = [line.strip() for line in printed.splitlines() if line.strip()]
    if "(traceback above)" not in message or not lines:
        return message
    where = [m.group(2) for line in lines
             if (m := _FILE_LINE.match(line)) and m.group(1) == location]
    detail = lines[-1] + (f" (line {where[-1]})" if where else "")
    return message.replace("(traceback above)", f"({detail})")


_FILE_LINE = re.compile(r'^File "(.*)", line (\d+)')


def rebuilder(recipe: Recipe | None) -> Callable[[], Settings] | None:
    """What the master calls on HUP to build its settings again (None without a recipe)."""
    if recipe is None:
        return None
    return functools.partial(rebuild, recipe)


def from_environ() -> Recipe | None:
    """The recipe ``sioctl start --daemon`` passed to its master, if any."""
    text = os.environ.get(RELOAD_ENV)
    if not text:
        return None
    try:
        return Recipe.from_json(text)
    except (ValueError, TypeError, AttributeError):
        return None
