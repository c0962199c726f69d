"""Where clusters keep their run directories, and which clusters are there."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

CONTROL_SOCKET = "control.sock"
MASTER_PIDFILE = "master.pid"
DAEMON_LOG = "sioctl.log"

# A title becomes a directory name and a process title: keep it to one safe path component.
_TITLE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,99}$")


def default_base(environ: Mapping[str, str]) -> str:
    """The run-dir base when none is given: ``$XDG_RUNTIME_DIR/sioctl`` or ``~/.sioctl/run``."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "sioctl")
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".sioctl", "run")


def resolve_base(option: str | None, environ: Mapping[str, str]) -> str:
    """The absolute run-dir base: ``--run-dir``/``SIOCTL_RUN_DIR`` if given, else the default."""
    return os.path.abspath(os.path.expanduser(option)) if option else default_base(environ)


def check_title(title: str) -> str | None:
    """None if ``title`` is usable as a cluster title, else why not (one line)."""
    if not _TITLE.match(title):
        return (
            f"title {title!r} must be 1-100 characters of letters, digits and . _ - + @, "
            "not starting with '.' or '-'"
        )
    return None


def cluster_dir(base: str, title: str) -> str:
    return os.path.join(base, title)


def control_socket(base: str, title: str) -> str:
    return os.path.join(base, title, CONTROL_SOCKET)


def master_pidfile(base: str, title: str) -> str:
    return os.path.join(base, title, MASTER_PIDFILE)


def known_titles(base: str) -> list[str]:
    """Titles under ``base`` that have a control socket or a master pidfile, sorted.

    Whether their master is alive is for the caller to find out.
    """
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    found = []
    for name in names:
        if check_title(name) is not None:
            continue
        if os.path.exists(control_socket(base, name)) or os.path.exists(
            master_pidfile(base, name)
        ):
            found.append(name)
    return found


def read_pidfile(path: str) -> int | None:
    """The pid in ``path``, or None if the file is missing or holds no positive number."""
    try:
        with open(path) as f:
            text = f.read(64).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None
