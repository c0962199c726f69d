"""gunicorn's command line on real clusters: the short flags (-D -p -t -n -e -k), the process
titles ps shows, --check-config, and --user/--group."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import (
    children_of,
    free_port,
    ips_for_slot,
    processes_with,
    wait_for_exit,
    wait_until,
    whoami,
)
from tests.support.cluster import CHAT_APPS, ENGINES, assert_clean_failure
from tests.support.identity import python_for
from tests.support.paths import REPO_ROOT

Run = Callable[..., "subprocess.CompletedProcess[str]"]
EXIT_TIMEOUT = 10.0


def process_title(pid: int) -> str:
    """What ps shows for ``pid``: its command line up to the first NUL."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[0].decode().strip()


@pytest.mark.parametrize("engine", ENGINES)
def test_short_flags_start_a_daemon_named_as_asked(
    run_sioctl: Run, connect: Callable[..., Any], base: str, marked: tuple[dict[str, str], str],
    engine: str,
) -> None:
    env, marker = marked
    port = free_port()
    pidfile = os.path.join(base, "master.pid")
    result = run_sioctl(
        "start", CHAT_APPS[engine], "-D", "-p", pidfile, "-t", "7", "-n", "chatty", "-k", engine,
        "-e", "SIOCTL_TEST_RAW=hello world", "-e", "SIOCTL_TEST_OTHER=2", "-w", "2",
        "-b", f"127.0.0.1:{port}", "--run-dir", base, env=env)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    # -D returned once the workers served; -n named the cluster (the default title) too.
    shown = json.loads(run_sioctl("status", "--title", "chatty", "--run-dir", base, "--json",
                                  env=env).stdout)
    master = int(shown["pid"])
    with open(pidfile) as f:
        assert int(f.read()) == master
    assert shown["engine"] == engine
    assert process_title(master) == "sioctl: master [chatty]"
    workers = {int(s["slot"]): int(s["pid"]) for s in shown["slots"]}
    for slot, pid in workers.items():
        assert process_title(pid) == f"sioctl: worker {slot} [chatty]"
    # The environment block stays readable (operators and these tests find processes by it).
    assert set(workers.values()) <= set(processes_with(marker))

    for slot in workers:
        client = connect(f"http://127.0.0.1:{port}", ips_for_slot(slot, 2)[0])
        assert whoami(client)["slot"] == slot
        assert client.call("getenv", "SIOCTL_TEST_RAW", timeout=10) == "hello world"
        assert client.call("getenv", "SIOCTL_TEST_OTHER", timeout=10) == "2"
        client.disconnect()

    result = run_sioctl("stop", "--pidfile", pidfile, env=env)
    assert result.returncode == 0, result.stderr
    assert wait_for_exit([master, *workers.values()], EXIT_TIMEOUT) == []


def test_title_names_the_processes(start_cluster: Callable[..., Any]) -> None:
    cluster = start_cluster(workers=1)
    assert process_title(cluster.pid) == f"sioctl: master [{cluster.title}]"
    [worker] = cluster.worker_pids().values()
    assert process_title(worker) == f"sioctl: worker 0 [{cluster.title}]"


def test_short_flags_resolve_to_the_settings(run_sioctl: Run, base: str) -> None:
    result = run_sioctl("start", "tests.apps.chat:sio", "-b", "127.0.0.1:7001", "--run-dir",
                        base, "-t", "12", "-n", "x", "-e", "A=1", "-e", "B==2", "-p", "p.pid",
                        "-D", "--print-config")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["timeout"], shown["proc_name"], shown["title"]) == (12.0, "x", "x")
    assert shown["raw_env"] == ["A=1", "B==2"] and shown["daemon"] is True
    assert shown["pidfile"].endswith("/p.pid")
    # A name that cannot be a title (it names a directory) names only the processes.
    result = run_sioctl("start", "tests.apps.chat:sio", "-b", "127.0.0.1:7001", "--run-dir",
                        base, "-n", "my chat app", "--print-config")
    shown = json.loads(result.stdout)
    assert (shown["proc_name"], shown["title"]) == ("my chat app", "sioctl-7001")
    result = run_sioctl("start", "tests.apps.chat:sio", "-e", "NOEQUALS", "--print-config")
    assert result.returncode == 2 and "'NOEQUALS' is not KEY=VALUE" in result.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_check_config_loads_the_app_and_starts_nothing(
    run_sioctl: Run, base: str, marked: tuple[dict[str, str], str], engine: str
) -> None:
    env, marker = marked
    port = free_port()
    args = ("start", "-b", f"127.0.0.1:{port}", "--run-dir", base, "-w", "2", "--check-config")
    result = run_sioctl(*args, CHAT_APPS[engine], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: {CHAT_APPS[engine]} loads on the {engine} engine")
    assert os.listdir(base) == []  # no run directory, no control socket: nothing started

    result = run_sioctl(*args, "-k", engine, "tests.apps.broken_env:sio", env=env)
    assert result.returncode == 1 and "OK" not in result.stdout
    assert "KeyError: 'SIOCTL_TEST_DATABASE_URL'" in result.stderr
    assert "tests/apps/broken_env.py:8 in database_url" in result.stderr

    # A config mistake is an error too, exit 1 (not a usage error's 2).
    result = run_sioctl(*args, "--chdir", os.path.join(base, "none"), CHAT_APPS[engine], env=env)
    assert result.returncode == 1 and "is not a directory" in result.stderr, result.stderr
    wait_until(lambda: not processes_with(marker), EXIT_TIMEOUT, what="every process to exit")


def uids_of(pid: int) -> set[int]:
    """The real, effective, saved and filesystem uids of ``pid`` (one value once dropped)."""
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("Uid:"))
    return {int(uid) for uid in line.split()[1:]}


def test_user_drops_root_after_binding(
    run_sioctl: Run, connect: Callable[..., Any], marked: tuple[dict[str, str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching users needs the tests to run as root")
    where = Path(tempfile.mkdtemp(prefix="siopy"))
    where.chmod(0o755)
    python = python_for("nobody", where)
    if python is None:
        shutil.rmtree(where, ignore_errors=True)
        pytest.skip("no Python that nobody can run with the test venv's packages")
    nobody = pwd.getpwnam("nobody").pw_uid
    env, marker = marked
    base = tempfile.mkdtemp(prefix="sio")
    os.chmod(base, 0o755)  # nobody must reach its run directory (and the Redis socket) below
    port = free_port()
    title = f"u{port}"
    log = tmp_path_factory.mktemp("user") / "master.log"
    with open(log, "wb") as out:
        master = subprocess.Popen(
            [python, "-m", "sioctl", "start", "tests.apps.chat:sio", "-w", "2", "--user", "nobody",
             "-b", f"127.0.0.1:{port}", "--run-dir", base, "--title", title],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        def ready() -> dict[str, Any] | None:
            assert master.poll() is None, log.read_text()
            result = run_sioctl("status", "--title", title, "--run-dir", base, "--json", env=env)
            shown = json.loads(result.stdout) if result.returncode == 0 else None
            states = [s["state"] for s in shown["slots"]] if shown else []
            return shown if states == ["ready", "ready"] else None

        # root's sioctl reaches the control socket of a master that is nobody now.
        shown = wait_until(ready, 30.0, what="both workers ready")
        workers = [int(s["pid"]) for s in shown["slots"]]
        redis = children_of(master.pid, "redis-server")
        assert len(redis) == 1
        for pid in (master.pid, *workers, *redis):
            assert uids_of(pid) == {nobody}, pid
        assert os.stat(os.path.join(base, title, "control.sock")).st_uid == nobody
        for slot in (0, 1):
            client = connect(f"http://127.0.0.1:{port}", ips_for_slot(slot, 2)[0])
            assert whoami(client)["slot"] == slot
            client.disconnect()
        assert "running as uid" in log.read_text()

        result = run_sioctl("stop", "--title", title, "--run-dir", base, env=env)
        assert result.returncode == 0, result.stderr
        assert master.wait(EXIT_TIMEOUT) == 0
        assert wait_for_exit([*workers, *redis], EXIT_TIMEOUT) == []
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(where, ignore_errors=True)


def test_user_that_does_not_exist_is_refused(run_sioctl: Run, base: str) -> None:
    result = run_sioctl("start", "tests.apps.chat:sio", "--run-dir", base, "-u", "nosuchuser",
                        "--print-config")
    assert_clean_failure(result, "'-u' / '--user'", "no user 'nosuchuser'")
    result = run_sioctl("start", "tests.apps.chat:sio", "--run-dir", base, "-g", "nosuchgroup",
                        "--print-config")
    assert_clean_failure(result, "no group 'nosuchgroup'")
