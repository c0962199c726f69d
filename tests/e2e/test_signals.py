"""The master's signals beyond stopping (issue 17): USR1 reopens the log files, TTIN / TTOU and
``sioctl scale`` change the worker count, HUP and ``sioctl reload`` re-read the config and roll
the workers. Real masters, workers and clients, on both engines.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import (
    bound_session,
    expected_slot,
    ips_for_slot,
    try_whoami,
    wait_for_exit,
    wait_until,
    whoami,
)
from tests.support.cluster import ENGINES

WORKERS = 2


def handshake(url: str, source_ip: str) -> None:
    """One Engine.IO polling handshake from ``source_ip``: one access log line on its worker."""
    with bound_session(source_ip) as session:
        reply = session.get(f"{url}/socket.io/?EIO=4&transport=polling", timeout=10)
    assert reply.status_code == 200, reply.text


def read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("engine", ENGINES)
def test_usr1_reopens_every_log_file_and_the_cluster_keeps_serving(
    start_cluster: Any, tmp_path: Path
) -> None:
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    cluster = start_cluster(workers=WORKERS, extra_args=[
        "--error-logfile", str(error_log), "--access-logfile", str(access_log)])
    pids = cluster.worker_pids()
    sources = [ips_for_slot(slot, WORKERS)[0] for slot in range(WORKERS)]
    for ip in sources:
        handshake(cluster.url, ip)
    wait_until(lambda: all(ip in read(access_log) for ip in sources), 10, what="access lines")

    # What logrotate does (without copytruncate): rename, then signal.
    os.rename(error_log, tmp_path / "error.log.1")
    os.rename(access_log, tmp_path / "access.log.1")
    cluster.signal(signal.SIGUSR1)

    def reopened_everywhere() -> bool:
        text = read(error_log)
        return "USR1: reopened" in text and all(
            f"[worker {slot} pid {pid}] INFO USR1: reopened" in text for slot, pid in pids.items())

    wait_until(reopened_everywhere, 10, what="master and workers reopening their logs")
    for ip in sources:
        handshake(cluster.url, ip)
    wait_until(lambda: all(ip in read(access_log) for ip in sources), 10,
               what="access lines in the new file")
    assert cluster.proc.poll() is None
    status = cluster.status()
    assert status["state"] == "running"
    assert cluster.worker_pids() == pids  # nothing restarted
    old_errors = read(tmp_path / "error.log.1")
    assert "USR1" not in old_errors and "ERROR" not in old_errors + read(error_log)


def slot_count(cluster: Any, workers: int) -> Any:
    """Wait until the cluster runs ``workers`` slots, each with a ready worker; its status."""
    return cluster.wait_for(
        lambda s: len(s["slots"]) == workers and all(x["state"] == "ready" for x in s["slots"])
        and s["workers"] == workers, 30, what=f"{workers} ready workers")


def sioctl_scale(run_sioctl: Any, cluster: Any, *args: str) -> Any:
    return run_sioctl("scale", *args, "--title", cluster.title, "--run-dir", cluster.run_base)


# Addresses whose slot moves, and one whose slot stays, when 2 workers become 3.
CANDIDATES = [f"127.0.0.{i}" for i in range(10, 60)]


@pytest.mark.parametrize("engine", ENGINES)
def test_ttin_ttou_and_sioctl_scale_change_the_worker_count(
    start_cluster: Any, connect: Any, run_sioctl: Any
) -> None:
    cluster = start_cluster(workers=WORKERS)
    staying = next(ip for ip in CANDIDATES if expected_slot(ip, 3) == expected_slot(ip, 2))
    moving = next(ip for ip in CANDIDATES if expected_slot(ip, 3) == 2)
    kept = connect(cluster, staying, ("websocket",))
    before = whoami(kept)

    cluster.signal(signal.SIGTTIN)
    status = slot_count(cluster, 3)
    third = connect(cluster, moving, ("polling", "websocket"))
    assert whoami(third)["slot"] == 2 == expected_slot(moving, 3)
    assert whoami(kept) == before  # a client whose slot stays keeps its worker and session

    result = sioctl_scale(run_sioctl, cluster, "4", "--wait")
    assert result.returncode == 0, result.stderr
    assert "3 -> 4 workers" in result.stdout
    slot_count(cluster, 4)
    shown = run_sioctl("status", "--title", cluster.title, "--run-dir", cluster.run_base)
    assert ", 4 " in shown.stdout.splitlines()[0], shown.stdout

    # Down: the highest slots go; their workers drain and exit.
    removed = [s["pid"] for s in cluster.status()["slots"] if s["slot"] >= 2]
    result = sioctl_scale(run_sioctl, cluster, "-2")
    assert result.returncode == 0, result.stderr
    slot_count(cluster, 2)
    assert wait_for_exit(removed, 30) == []
    # The client of the removed slot reconnects to the slot that serves it now.
    wait_until(lambda: (try_whoami(third) or {}).get("slot") == expected_slot(moving, 2), 30,
               what="the moved client back on its slot")
    assert whoami(kept)["pid"] == before["pid"]

    cluster.signal(signal.SIGTTOU)
    slot_count(cluster, 1)
    cluster.signal(signal.SIGTTOU)  # never below one
    result = sioctl_scale(run_sioctl, cluster, "0")
    assert result.returncode == 1 and "at least one worker" in result.stderr, result.stderr
    wait_until(lambda: "TTOU ignored" in cluster.log_text(), 10, what="TTOU refused at one")
    assert len(cluster.status()["slots"]) == 1
    assert whoami(kept)["slot"] == 0
    assert status["state"] == "running" and cluster.proc.poll() is None
