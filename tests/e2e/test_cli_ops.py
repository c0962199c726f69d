"""Day-2 operations from the command line, on real daemons: which clusters ``sioctl stop``
stops, and what it says when nothing runs."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

from tests.support.clients import (
    free_port,
    pid_alive,
    processes_with,
    wait_for_exit,
    wait_until,
)

Run = Callable[..., "subprocess.CompletedProcess[str]"]
# Time allowed for processes to go away once they were told to.
EXIT_TIMEOUT = 10.0


def start_daemon(run_sioctl: Run, env: dict[str, str], base: str, title: str) -> int:
    """Start a one-worker daemon titled ``title`` under ``base``; returns its master's pid."""
    port = free_port()
    result = run_sioctl("start", "tests.apps.chat:sio", "--daemon", "-w", "1",
                        "-b", f"127.0.0.1:{port}", "--run-dir", base, "--title", title, env=env)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    with open(os.path.join(base, title, "master.pid")) as f:
        return int(f.read())


def test_bare_stop_with_several_clusters_stops_none(
    run_sioctl: Run, base: str, marked: tuple[dict[str, str], str]
) -> None:
    env, marker = marked
    masters = {title: start_daemon(run_sioctl, env, base, title) for title in ("one", "two")}

    result = run_sioctl("stop", "--run-dir", base, env=env)
    assert result.returncode == 1, result.stderr
    for title, pid in masters.items():
        assert f"{title} (pid {pid})" in result.stderr, result.stderr
    assert "--all" in result.stderr and "--title" in result.stderr
    assert all(pid_alive(pid) for pid in masters.values())

    result = run_sioctl("stop", "--run-dir", base, "--all", env=env)
    assert result.returncode == 0, result.stderr
    assert wait_for_exit(list(masters.values()), EXIT_TIMEOUT) == []
    wait_until(lambda: not processes_with(marker), EXIT_TIMEOUT, what="every process to exit")


def test_bare_stop_with_one_cluster_stops_it(
    run_sioctl: Run, base: str, marked: tuple[dict[str, str], str]
) -> None:
    env, _marker = marked
    pid = start_daemon(run_sioctl, env, base, "only")
    result = run_sioctl("stop", "--run-dir", base, env=env)
    assert result.returncode == 0, result.stderr
    assert f"only stopped (pid {pid})" in result.stderr
    assert wait_for_exit([pid], EXIT_TIMEOUT) == []


def test_stop_when_nothing_runs(run_sioctl: Run, base: str, tmp_path: str) -> None:
    # Without --if-running it fails, as before (a script learns that nothing was stopped).
    for extra in ((), ("--title", "nosuch"), ("--pidfile", os.path.join(base, "none.pid"))):
        result = run_sioctl("stop", "--run-dir", base, *extra)
        assert result.returncode == 1, (extra, result.stderr)
        result = run_sioctl("stop", "--run-dir", base, "--if-running", *extra)
        assert result.returncode == 0, (extra, result.stderr)
        assert result.stderr.strip(), f"{extra}: says nothing"
    result = run_sioctl("stop", "--run-dir", base, "--if-running")
    assert "no sioctl cluster is running" in result.stderr


def test_a_bind_without_host_warns_once(run_sioctl: Run, base: str) -> None:
    # --print-config resolves the settings as start does, without binding 0.0.0.0 here.
    port = free_port()
    args = ("start", "tests.apps.chat:sio", "--run-dir", base, "--print-config")
    result = run_sioctl(*args, "-b", str(port), "-b", f":{port + 1}")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "every interface" in line]
    assert len(warnings) == 1, result.stderr
    assert f"-b {port}," in warnings[0] and f"-b :{port + 1} " in warnings[0]
    assert json.loads(result.stdout)["binds"] == [f"{port}", f":{port + 1}"]

    result = run_sioctl(*args, env={**os.environ, "SIOCTL_BIND": f":{port}"})
    assert "every interface" in result.stderr

    result = run_sioctl(*args, "-b", f"127.0.0.1:{port}")
    assert result.returncode == 0 and "every interface" not in result.stderr, result.stderr
