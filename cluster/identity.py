"""Dropping root after the listeners are bound (``--user`` / ``--group``, gunicorn's settings).

The master binds :80 or :443 as root, then switches itself to the user and group before it
starts any worker, so the workers (and the embedded redis-server) never run as root. The run
directory and its control socket are handed to that user first: the master keeps serving
``sioctl status`` / ``stop`` through them, and root's CLI can still reach them.
"""

from __future__ import annotations

import grp
import os
import pwd
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings


class IdentityError(Exception):
    """The master cannot become ``--user``/``--group``; the message says why."""


def resolve(user: str | None, group: str | None) -> tuple[int, int]:
    """(uid, gid) for ``user`` and ``group`` (names or numbers; None: keep the current one;
    the group defaults to the user's). Raises LookupError naming what does not exist."""
    uid, gid = os.geteuid(), os.getegid()
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise LookupError(f"no user {user!r} on this machine") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if group is not None:
        try:
            gid = (grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)).gr_gid
        except KeyError:
            raise LookupError(f"no group {group!r} on this machine") from None
    return uid, gid


def drop_privileges(user: str | None, group: str | None, owned: list[str]) -> tuple[int, int]:
    """Become ``user``:``group`` for good (group first, supplementary groups set from the
    user's); the files in ``owned`` (run directory, control socket...) are given to them first.
    Returns (uid, gid). Raises OSError if the switch fails (not root, say)."""
    uid, gid = resolve(user, group)
    if (uid, gid) == (os.geteuid(), os.getegid()):
        return uid, gid
    for path in owned:
        if os.path.exists(path):
            os.chown(path, uid, gid)
    name = pwd.getpwuid(uid).pw_name if user is not None else None
    if name is not None:
        os.initgroups(name, gid)
    else:
        os.setgroups([gid])
    os.setgid(gid)
    os.setuid(uid)
    return uid, gid


def switch_user(s: Settings) -> tuple[int, int] | None:
    """Become ``s.user``/``s.group`` for good, after giving them the run directory, control
    socket, pid file and log files; returns (uid, gid), or None when neither is set. Raises
    IdentityError when it cannot (unknown name, not root, a run dir they cannot enter)."""
    if not (s.user or s.group):
        return None
    logs = [path for path in (s.errorlog, s.accesslog) if path and path != "-"]
    try:
        for path in logs:
            open(path, "a").close()  # the workers open them as the user
        uid, gid = drop_privileges(
            s.user, s.group, [s.run_dir, s.control_socket, s.master_pidfile, *logs])
    except (OSError, LookupError) as exc:
        raise IdentityError(f"cannot switch to user {s.user or '-'} / group {s.group or '-'}: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
    if not os.access(s.run_dir, os.W_OK | os.X_OK):
        raise IdentityError(f"run directory {s.run_dir} is out of reach of uid {uid}: give "
                            "--run-dir under a directory it can enter (/run/sioctl, say)")
    return uid, gid
