"""Telling an app directory from a ``module:attr`` reference, and reading its config for the CLI.

An app directory is laid out as ``app/router.py`` plus ``config/config_*.py``
(:func:`sioctl.worker.framework.config.is_app_dir`). The CLI hands the workers its absolute path
as ``Settings.app``; they load it themselves. The CLI reads the config only to check it before
anything starts and to take ``io.redis`` from it.
"""

from __future__ import annotations

import os
from typing import IO, Any

import click

from sioctl.worker.framework.config import AppConfig, ConfigError, is_app_dir, load_config

# `sioctl start` serves production unless told otherwise; `sioctl dev` passes its own default.
DEFAULT_ENV = "prod"


class AppError(click.ClickException):
    """A mistake in the app itself (not in the command line): one line, exit status 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"sioctl: error: {self.format_message()}", file=file, err=True)


def _looks_like_path(app: str) -> bool:
    return "/" in app or os.sep in app or app in (".", "..") or app.startswith("~")


def resolve(app: str | None, *, cwd: str, default_dir: str) -> str | None:
    """The absolute app directory that ``app`` names, or None when ``app`` is a module reference.

    ``app`` is a path (relative to ``cwd``) or a bare name of a directory there; a bare name that
    is no app directory stays a module reference (a package, say). With no ``app``,
    ``default_dir`` is the app directory if it is laid out as one, else None. Raises
    click.BadParameter for a path that is no app directory.
    """
    if not app:
        return os.path.abspath(default_dir) if is_app_dir(default_dir) else None
    path = os.path.normpath(os.path.join(cwd, os.path.expanduser(app)))
    if is_app_dir(path):
        return path
    if not _looks_like_path(app):
        return None
    if not os.path.isdir(path):
        raise click.BadParameter(f"{app!r} is not a directory", param_hint="APP")
    raise click.BadParameter(
        f"{app!r} is not an app directory (it has neither config/config_default.py "
        "nor app/router.py)",
        param_hint="APP",
    )


def read_config(app_dir: str, env: str) -> AppConfig:
    """The app's merged config for ``env``; a ConfigError becomes a one-line AppError.

    Its info lines (egg-socket.io names read as ours, a missing ``config_{env}.py``) go to
    stderr here, once per command: the workers read the config again without saying them.
    """
    try:
        config = load_config(app_dir, env)
    except ConfigError as exc:
        raise AppError(str(exc)) from None
    for note in config.notes:
        click.echo(f"sioctl: {note}", err=True)
    return config
