"""An interpreter an unprivileged user can run, for the tests of ``--user``/``--group``.

A master that drops root re-executes Python for its probe and workers as that user; the test
venv's interpreter may live under a directory only root can enter (/root/.pyenv here). A
Python of the same version elsewhere on the machine (/usr/bin/python3.X) gets a small venv
whose ``.pth`` adds the test venv's site-packages (sioctl's editable install included), so the
same code runs as ``nobody``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path


def runs_as(user: str, python: str) -> bool:
    """True if ``user`` can run ``python`` and import sioctl with it."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return False

    def demote() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    try:
        done = subprocess.run([python, "-c", "import sioctl.cluster.settings"], cwd="/",
                              preexec_fn=demote, capture_output=True, timeout=60)
    except OSError:
        return False
    return done.returncode == 0


def python_for(user: str, where: Path) -> str | None:
    """A Python ``user`` can run with the test venv's packages: this one, or a venv under
    ``where`` (made readable to all) on the system's Python of the same version; None when
    there is neither."""
    if runs_as(user, sys.executable):
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/usr/local/bin")
    if system is None:
        return None
    venv = where / "venv"
    subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(site, "sioctl-test-venv.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    if sys.version_info >= (3, 11):
        # redis-py takes asyncio.timeout from 3.11.3 on and async_timeout before; a system
        # 3.11.2 has the former but not the package: the shim names the same function.
        Path(site, "async_timeout.py").write_text("from asyncio import timeout  # noqa: F401\n")
    for path in (where, *where.rglob("*")):
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o444)
    python = str(venv / "bin" / "python")
    return python if runs_as(user, python) else None
