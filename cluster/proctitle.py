"""What ``ps`` and ``top`` show for the master and the workers, as gunicorn names them:
``sioctl: master [NAME]``, ``sioctl: worker 2 [NAME]`` (NAME: ``-n``/``proc_name``, else the
cluster's title).

Python has no portable way to change its process title, hence the setproctitle package. It is
told (``SPT_NOENV``) to keep the environment block where it is: ``/proc/PID/environ`` is how
operators and the tests find a process by its variables, and a title then fits in the space of
the original command line (longer ones are cut, which ``ps`` would do anyway).
"""

from __future__ import annotations

import os


def title_of(role: str, name: str) -> str:
    """The title for ``role`` (``master``, ``worker 2``) of the cluster named ``name``."""
    return f"sioctl: {role} [{name}]"


def keep_environment() -> None:
    """Tell setproctitle, before anything imports it (gunicorn's util does, and the module
    reads the variable when it loads), to leave the environment block alone; the variable is
    inherited by the workers, which set their titles too."""
    os.environ.setdefault("SPT_NOENV", "1")


def set_title(role: str, name: str) -> bool:
    """Show :func:`title_of` in ps; False when setproctitle is not installed (the command
    line then stays what it was)."""
    keep_environment()
    try:
        import setproctitle
    except ImportError:
        return False
    setproctitle.setproctitle(title_of(role, name))
    return True
