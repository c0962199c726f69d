"""Edge cases of the master found in review: each failed before its fix."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

from tests.support.clients import pid_alive, wait_until
from tests.support.paths import REPO_ROOT

# Two edge cases of the restart rules (workers that lived long do not count as a crash loop;
# --timeout 0 turns the heartbeat check off) are checked on a fake clock in test_master_policy.py.


def test_a_replacement_that_cannot_start_leaves_the_old_worker_serving(
    start_cluster: Any, tmp_path: Path
) -> None:
    app_dir = tmp_path / "code"
    shutil.copytree(REPO_ROOT / "tests" / "apps", app_dir / "myapps")
    cluster = start_cluster(app="myapps.chat:sio", extra_args=["--chdir", str(app_dir)])
    before = cluster.worker_pids()
    # The next worker cannot import the app. (Moving the --chdir directory away no longer
    # reaches the workers: HUP reads the settings again first, finds no such directory and
    # keeps the workers, see test_signals.py.)
    module = app_dir / "myapps" / "chat.py"
    moved = app_dir / "myapps" / "chat.py.away"
    module.rename(moved)
    try:
        cluster.signal(signal.SIGHUP)
        wait_until(lambda: "rolling restart stopped" in cluster.log_text(), 10,
                   what="the restart to stop")
        assert cluster.worker_pids() == before
        assert all(pid_alive(pid) for pid in before.values())
    finally:
        moved.rename(module)
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


# Imported by every Python process on PYTHONPATH; kills a worker before it runs any of sioctl
# (so before it opens its end of the channel) while the marker file exists.
DIE_EARLY = """\
import os, signal
if os.environ.get("SIOCTL_WORKER_SLOT") and os.path.exists(os.environ["DIE_EARLY_MARKER"]):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_worker_that_dies_before_opening_its_channel_does_not_hang_the_master(
    start_cluster: Any, tmp_path: Path
) -> None:
    # Taking back what a dead worker left unread used to block for good on its empty channel
    # when the worker had not yet made its end non-blocking (Python 3.11's socket.recv_fds
    # ignores MSG_DONTWAIT): the master answered nothing more, not even status.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(DIE_EARLY)
    marker = tmp_path / "die-early"
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    cluster = start_cluster(workers=1, env={"PYTHONPATH": pythonpath,
                                            "DIE_EARLY_MARKER": str(marker)})
    first = cluster.worker_pids()[0]
    marker.touch()
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: cluster.log_text().count("was killed by SIGKILL") >= 3, 10,
               what="respawned workers to die early")
    assert cluster.status(timeout=2.0)["state"] == "running"
    marker.unlink()
    cluster.wait_for(lambda s: s["slots"][0]["state"] == "ready"
                     and s["slots"][0]["pid"] != first, what="slot 0 serving again")
