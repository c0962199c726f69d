"""The master's signals beyond stopping (issue 17): USR1 reopens the log files, TTIN / TTOU and
``sioctl scale`` change the worker count, HUP and ``sioctl reload`` re-read the config and roll
the workers. Real masters, workers and clients, on both engines.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import (
    bound_session,
    expected_slot,
    free_port,
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
    rows = [line for line in shown.stdout.splitlines() if line.split()[:1] in (["2"], ["3"])]
    assert len(rows) == 2 and "ready" in rows[1], shown.stdout  # slots 2 and 3 shown

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


def rolled(cluster: Any, old: dict[int, int]) -> Any:
    """Wait until every slot of ``old`` ({slot: pid}) has a new ready worker."""
    return cluster.wait_for(
        lambda s: all(x["state"] == "ready" and x["pid"] not in old.values()
                      and x["standby_pid"] is None for x in s["slots"]),
        40, what="every worker replaced")


@pytest.mark.parametrize("engine", ENGINES)
def test_hup_and_sioctl_reload_read_the_config_again_and_keep_workers_on_a_bad_one(
    start_cluster: Any, run_sioctl: Any, tmp_path: Path
) -> None:
    access_log, ignored = tmp_path / "access.log", tmp_path / "from-file.log"
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(f"access_log_format = 'one %(h)s %(s)s'\naccesslog = {str(ignored)!r}\n")
    cluster = start_cluster(workers=WORKERS, extra_args=[
        "-c", str(config), "--access-logfile", str(access_log)])
    ip = ips_for_slot(0, WORKERS)[0]
    handshake(cluster.url, ip)
    wait_until(lambda: f"one {ip} 200" in read(access_log), 10, what="the first format")

    # A new format and worker count in the file; -w and --access-logfile still win.
    config.write_text(f"access_log_format = 'two %(h)s %(s)s'\naccesslog = {str(ignored)!r}\n"
                      "workers = 3\n")
    pids = cluster.worker_pids()
    cluster.signal(signal.SIGHUP)
    status = rolled(cluster, pids)
    assert len(status["slots"]) == WORKERS
    handshake(cluster.url, ip)
    wait_until(lambda: f"two {ip} 200" in read(access_log), 10, what="the re-read format")
    assert not ignored.exists()

    # A broken file: nothing changes, one ERROR line says why, no traceback.
    config.write_text("access_log_format = 'three %(h)s'\nthis is not python\n")
    pids = cluster.worker_pids()
    cluster.signal(signal.SIGHUP)
    wait_until(lambda: "config not reloaded" in cluster.log_text(), 10, what="the config error")
    result = run_sioctl("reload", "--title", cluster.title, "--run-dir", cluster.run_base)
    assert result.returncode == 1 and "config not reloaded" in result.stderr, result.stderr
    errors = [line for line in cluster.log_text().splitlines() if " ERROR " in line]
    assert len(errors) == 2 and all("config not reloaded" in e for e in errors), errors
    assert "NameError: name 'this' is not defined (line 2)" in errors[0], errors
    assert "Traceback" not in cluster.log_text()
    assert cluster.worker_pids() == pids
    handshake(cluster.url, ip)
    wait_until(lambda: read(access_log).count(f"two {ip} 200") == 2, 10, what="still serving")

    # Fixed: sioctl reload reads it and rolls.
    config.write_text("access_log_format = 'four %(h)s %(s)s'\n")
    result = run_sioctl("reload", "--title", cluster.title, "--run-dir", cluster.run_base)
    assert result.returncode == 0, result.stderr
    assert "config read again; rolling restart of 2 workers" in result.stdout
    rolled(cluster, pids)
    handshake(cluster.url, ip)
    wait_until(lambda: f"four {ip} 200" in read(access_log), 10, what="the fixed format")


def test_a_background_master_reloads_its_config_and_rotates_its_output(
    run_sioctl: Any, redis_url: str, tmp_path: Path
) -> None:
    """``start --daemon``: the master is another process; it gets how its settings were built
    (SIOCTL_RELOAD) and reads the file again on ``sioctl reload``; its output file (no
    --error-logfile: RUN_DIR/sioctl.log, the workers' too) is reopened on USR1."""
    port = free_port()
    run_base = tempfile.mkdtemp(prefix="sio")
    access_log, config = tmp_path / "access.log", tmp_path / "gunicorn.conf.py"
    config.write_text("access_log_format = 'one %(h)s'\nworkers = 1\n")
    where = ["--title", f"d{port}", "--run-dir", run_base]
    started = run_sioctl("start", "tests.apps.chat:sio", "--daemon", "--redis",
                         redis_url, "-b", f"127.0.0.1:{port}", "-c", str(config),
                         "--access-logfile", str(access_log), *where)
    try:
        assert started.returncode == 0, started.stderr
        url = f"http://127.0.0.1:{port}"
        handshake(url, "127.0.0.2")
        wait_until(lambda: "one 127.0.0.2" in read(access_log), 10, what="the first format")
        # No -w at start: the file's worker count applies, and HUP applies a new one.
        config.write_text("access_log_format = 'two %(h)s'\nworkers = 2\n")
        result = run_sioctl("reload", *where)
        assert result.returncode == 0 and "config read again" in result.stdout, result.stderr
        assert "rolling restart of 2 workers" in result.stdout
        wait_until(lambda: [s["state"] for s in json.loads(run_sioctl(
            "status", "--json", *where).stdout)["slots"]] == ["ready", "ready"], 30,
            interval=0.3, what="two ready workers")
        wait_until(lambda: (handshake(url, "127.0.0.2"), "two 127.0.0.2" in read(access_log))[1],
                   20, interval=0.5, what="the re-read format")

        output = Path(run_base) / f"d{port}" / "sioctl.log"
        os.rename(output, output.with_name("sioctl.log.1"))
        master = int((output.parent / "master.pid").read_text())
        os.kill(master, signal.SIGUSR1)
        wait_until(lambda: "[master" in read(output) and "[worker 0 pid" in read(output), 10,
                   what="master and worker writing to the new output file")
        assert "USR1: reopened" in read(output)
    finally:
        run_sioctl("stop", *where)
        shutil.rmtree(run_base, ignore_errors=True)


def stale_poll(url: str, source_ip: str, sid: str) -> int:
    """A polling GET for ``sid`` from ``source_ip``, as a client whose session lived on a
    worker that is gone sends it; returns the status code."""
    with bound_session(source_ip) as session:
        reply = session.get(f"{url}/socket.io/?EIO=4&transport=polling&sid={sid}", timeout=10)
    return int(reply.status_code)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_planned_restart_or_scale_down_under_polling_clients_logs_no_error(
    start_cluster: Any, connect: Any
) -> None:
    cluster = start_cluster(workers=WORKERS)
    sources = [ips_for_slot(slot, WORKERS)[i] for slot in range(WORKERS) for i in range(2)]
    clients = [connect(cluster, ip, ("polling",)) for ip in sources]
    sids = [client.eio.sid for client in clients]
    pids = cluster.worker_pids()

    cluster.signal(signal.SIGHUP)
    rolled(cluster, pids)
    # What a polling client of a session on the old worker sends to the new one.
    assert stale_poll(cluster.url, sources[0], sids[0]) == 400
    for client in clients:
        wait_until(lambda c=client: try_whoami(c) is not None, 30, what="clients back")

    # Scale down: the clients of slot 1 reach slot 0, which never had their sessions.
    moved = [(ip, client.eio.sid) for ip, client in zip(sources, clients, strict=True)
             if expected_slot(ip, WORKERS) == 1]
    cluster.signal(signal.SIGTTOU)
    slot_count(cluster, 1)
    assert all(stale_poll(cluster.url, ip, sid) == 400 for ip, sid in moved)
    for client in clients:
        wait_until(lambda c=client: (try_whoami(c) or {}).get("slot") == 0, 30,
                   what="clients on the one worker left")

    log = cluster.log_text()
    assert [line for line in log.splitlines() if " ERROR " in line] == []
    assert "answered 400, the client starts a new session" in log


def test_usr2_and_growing_without_redis_are_refused_with_a_warning(start_cluster: Any) -> None:
    """USR2, gunicorn's binary upgrade signal, used to end the master (no handler); TTIN on
    one worker without Redis would start a worker that cannot reach the first one's clients."""
    cluster = start_cluster(workers=1, redis_url=None)
    pids = cluster.worker_pids()
    cluster.signal(signal.SIGUSR2)
    wait_until(lambda: "USR2 ignored" in cluster.log_text(), 10, what="the warning")
    cluster.signal(signal.SIGTTIN)
    wait_until(lambda: "scale to 2 worker(s) ignored: the workers would have no Redis"
               in cluster.log_text(), 10, what="the refusal")
    assert cluster.proc.poll() is None
    assert cluster.status()["state"] == "running" and cluster.worker_pids() == pids
