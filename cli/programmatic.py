"""``sioctl.start_cluster``: ``sioctl start`` called from Python, for egg's
``startCluster({sticky: true, workers, port, ...})``.

The keyword arguments are the settings' names (the fields of
:class:`sioctl.cluster.settings.Settings` that have a command-line flag), resolved exactly as
``sioctl start`` resolves its options: the gunicorn config file, ``SIOCTL_*`` variables, an app
directory's ``io.redis`` and every check apply the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import click

from sioctl.cluster.settings import SPECS

from . import main
from .rebuild import Recipe

# Settings given by start_cluster's own parameters rather than by keyword.
_OWN = {"app", "binds", "workers"}


def start_cluster(
    app: str | None = None,
    *,
    workers: int | None = None,
    bind: str | Sequence[str] | None = None,
    port: int | None = None,
    sticky: bool = True,
    config_file: str | None = None,
    **settings: Any,
) -> int:
    """Start a cluster serving ``app`` (``module:attr`` or an app directory) and block until it
    stops, as ``sioctl start`` does; returns the master's exit status.

    ``bind`` is one ``HOST:PORT`` or several; ``port`` is egg's ``--port`` (every interface, or
    each ``bind`` host); ``workers`` defaults to the number of CPUs. ``sticky`` is accepted for
    egg's ``startCluster({sticky: true})``: it is the only mode. ``settings`` are other settings
    by name (``redis_url=``, ``title=``, ``env=``, ``graceful_timeout=``, ``daemon=True`` to
    return once every worker is ready, ...). Like ``sioctl start`` it changes the working
    directory to the app's, and it must run in the main thread (the master handles signals:
    SIGTERM or SIGINT stop it gracefully). Raises TypeError for an unknown setting name and
    ValueError (one line) for anything ``sioctl start`` would refuse.
    """
    if not sticky:
        raise ValueError("sticky is the only mode: each client address is served by one worker")
    binds = [bind] if isinstance(bind, str) else list(bind or ())
    options: dict[str, Any] = {"app": app, "workers": workers, "bind": tuple(binds),
                               "port": port}
    for name, value in settings.items():
        spec = SPECS.get(name)
        if spec is None or not spec.flags or name in _OWN:
            known = ", ".join(sorted(s.name for s in SPECS.values()
                                     if s.flags and s.name not in _OWN))
            raise TypeError(f"start_cluster() got an unknown setting {name!r} (known: {known})")
        options[spec.option] = value
    try:
        settings_ = main.start_settings(config_file, options, os.getcwd())
        # As `sioctl start`: HUP reads the config file and app directory's config again.
        return main.launch(settings_, Recipe.of(config_file, options, os.getcwd()))
    except click.ClickException as exc:
        raise ValueError(exc.format_message()) from None
