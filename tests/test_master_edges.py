"""Edge cases of the master found in review: each failed before its fix."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from clients import pid_alive, wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
# Longer than the master's QUICK_DEATH (5 s): a worker that lived this long died of old age.
LONG_LIFE = 5.5


def test_timeout_zero_turns_the_heartbeat_check_off(start_cluster: Any) -> None:
    cluster = start_cluster(extra_args=["--timeout", "0"])
    before = cluster.worker_pids()
    time.sleep(2.5)  # two heartbeat ticks: a zero timeout used to kill on every one
    assert cluster.worker_pids() == before
    assert "killing it" not in cluster.log_text()


def test_workers_that_lived_long_do_not_count_as_a_crash_loop(start_cluster: Any) -> None:
    cluster = start_cluster()
    for _ in range(2):
        time.sleep(LONG_LIFE)
        pid = cluster.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        cluster.wait_for(
            lambda s, pid=pid: s["slots"][0]["pid"] not in (None, pid)
            and s["slots"][0]["state"] == "ready",
            what="slot 0 respawned",
        )
    assert "keeps dying" not in cluster.log_text()
    assert cluster.slot_info(0)["restarts"] == 2


def test_a_replacement_that_cannot_start_leaves_the_old_worker_serving(
    start_cluster: Any, tmp_path: Path
) -> None:
    app_dir = tmp_path / "code"
    shutil.copytree(REPO_ROOT / "tests" / "apps", app_dir / "myapps")
    cluster = start_cluster(app="myapps.chat:sio", extra_args=["--chdir", str(app_dir)])
    before = cluster.worker_pids()
    moved = tmp_path / "code-away"
    app_dir.rename(moved)  # the next worker cannot be started in its directory
    try:
        cluster.signal(signal.SIGHUP)
        wait_until(lambda: "rolling restart stopped" in cluster.log_text(), 10,
                   what="the restart to stop")
        assert cluster.worker_pids() == before
        assert all(pid_alive(pid) for pid in before.values())
    finally:
        moved.rename(app_dir)
    # Nothing is stuck: the next HUP replaces every slot.
    cluster.signal(signal.SIGHUP)
    cluster.wait_for(
        lambda s: all(e["pid"] not in (None, before[e["slot"]]) and e["state"] == "ready"
                      for e in s["slots"]),
        what="every slot replaced",
    )


def test_unwritable_pidfile_is_a_one_line_error(run_sioctl: Any, tmp_path: Path) -> None:
    result = run_sioctl(
        "start", "tests.apps.chat:sio", "-w", "1", "-b", "127.0.0.1:0",
        "--run-dir", str(tmp_path / "run"), "--title", "pidfile",
        "--pidfile", str(tmp_path / "missing" / "x.pid"),
    )
    assert result.returncode == 1
    assert f"cannot write pidfile {tmp_path / 'missing' / 'x.pid'}" in result.stderr
    assert "Traceback" not in result.stderr
