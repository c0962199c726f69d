"""Edge cases of the master found in review: each failed before its fix."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

from clients import pid_alive, wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent

# Two edge cases of the restart rules (workers that lived long do not count as a crash loop;
# --timeout 0 turns the heartbeat check off) are checked on a fake clock in test_master_policy.py.


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
