"""``python -m sioctl.cluster [--ready-fd N]``: run a master with the settings in SIOCTL_SETTINGS.

This is how ``sioctl start --daemon`` and ``sioctl dev --workers N`` start a master in a process
of its own; ``sioctl start`` in the foreground runs the same Arbiter in-process. The settings come
through the environment, not the command line, because a Redis URL may carry a password and any
user can read another process's command line.
"""

from __future__ import annotations

import argparse
import os
import sys

from .arbiter import Arbiter
from .settings import SETTINGS_ENV, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sioctl.cluster")
    parser.add_argument("--ready-fd", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_environ()
    except (KeyError, ValueError, TypeError):
        parser.error(f"{SETTINGS_ENV} must hold the cluster's settings as JSON")
    # How `sioctl start --daemon` built the settings, for HUP to build them again. The CLI's
    # config reader (click, gunicorn's loader) is imported only if there is a recipe.
    rebuild = None
    if os.environ.get("SIOCTL_RELOAD"):
        from sioctl.cli import rebuild as cli_rebuild

        rebuild = cli_rebuild.rebuilder(cli_rebuild.from_environ())
    return Arbiter(settings, rebuild).run(ready_fd=args.ready_fd)


if __name__ == "__main__":
    sys.exit(main())
