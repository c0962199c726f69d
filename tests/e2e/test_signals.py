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

from tests.support.clients import bound_session, ips_for_slot, wait_until
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
