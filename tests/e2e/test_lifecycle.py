"""The cluster's life end to end: bounded queues, crash loops, signals, the CLI around a running
cluster, the embedded Redis, daemon mode, IPv6 and the access log.

Everything is real: master and worker processes, redis-server, python-socketio clients from
127.0.0.x (or ::1) source addresses, and raw TCP sockets where a client would be too polite.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import (
    BoundClient,
    children_of,
    free_port,
    ips_for_slot,
    processes_with,
    try_whoami,
    wait_for_exit,
    wait_for_upgrade,
    wait_until,
    whoami,
)
from tests.support.cluster import ENGINES

WORKERS = 2
# Addresses for the flood of raw connections: more candidates than clients.SOURCE_IPS so that
# slot 0 has an address of its own, unused by the socket.io clients of the same test.
FLOOD_CANDIDATES = [f"127.0.0.{i}" for i in range(10, 40)]
# Upper bound on the raw connections the pending-queue test opens.
FLOOD_MAX = 1500
FLOOD_BATCH = 50
PENDING_LIMIT = 5
# Connections opened once the queue is full, all of which the master must close.
OVERFLOW = 30
# A graceful timeout long enough that "prompt" cannot be mistaken for "graceful".
LONG_GRACEFUL = 30
# Time allowed for processes to go away once they were told to.
EXIT_TIMEOUT = 10.0

Connect = Callable[..., BoundClient]
StartCluster = Callable[..., Any]


def write_config(tmp_path: Path, text: str) -> list[str]:
    """``-c FILE`` options for a gunicorn config file holding ``text``."""
    config = tmp_path / f"gunicorn-{uuid.uuid4().hex[:8]}.conf.py"
    config.write_text(text)
    return ["-c", str(config)]


def slot_entry(status: dict[str, Any], slot: int) -> dict[str, Any]:
    return dict(next(s for s in status["slots"] if s["slot"] == slot))


def served_by(client: BoundClient, slot: int, pid: int) -> bool:
    answer = try_whoami(client)
    return answer is not None and answer["slot"] == slot and answer["pid"] == pid


def raw_connection(source_ip: str, port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` from ``source_ip`` that never sends a byte."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((source_ip, 0))
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


@pytest.mark.parametrize("engine", ENGINES)
def test_stuck_slot_queues_a_bounded_number_of_connections(
    start_cluster: StartCluster, connect: Connect
) -> None:
    cluster = start_cluster(workers=WORKERS, extra_args=["--pending-limit", str(PENDING_LIMIT)])
    pids = cluster.worker_pids()
    flood_ip = ips_for_slot(0, WORKERS, FLOOD_CANDIDATES)[0]
    sockets: list[socket.socket] = []
    os.kill(pids[0], signal.SIGSTOP)
    try:
        # Fill the stopped worker's channel (fds in flight), then its bounded queue.
        while len(sockets) < FLOOD_MAX:
            for _ in range(FLOOD_BATCH):
                sockets.append(raw_connection(flood_ip, cluster.port))
            if slot_entry(cluster.status(), 0)["dropped"] > 0:
                break
        first = cluster.wait_for(
            lambda s: slot_entry(s, 0)["dropped"] > 0,
            what=f"slot 0 to close connections after {len(sockets)} were opened",
        )
        dropping_since = time.monotonic()
        # Everything beyond the bound is closed, not queued.
        extra = [raw_connection(flood_ip, cluster.port) for _ in range(OVERFLOW)]
        sockets.extend(extra)
        expected_drops = slot_entry(first, 0)["dropped"] + OVERFLOW
        status = cluster.wait_for(
            lambda s: slot_entry(s, 0)["dropped"] >= expected_drops,
            what=f"slot 0 to have closed {expected_drops} connections",
        )
        stuck = slot_entry(status, 0)
        assert stuck["pending"] == PENDING_LIMIT, status
        assert stuck["pid"] == pids[0], status
        assert slot_entry(status, 1)["pending"] == 0, status
        assert slot_entry(status, 1)["dropped"] == 0, status
        # A closed connection ends for the client: end-of-file (or a reset), not a hang.
        extra[-1].settimeout(5.0)
        try:
            assert extra[-1].recv(1) == b""
        except ConnectionResetError:
            pass

        # Logged, but not once per closed connection.
        warnings = [
            line
            for line in cluster.log_text().splitlines()
            if "slot 0:" in line and "closed the one from" in line
        ]
        assert warnings, cluster.log_text()
        assert f"{PENDING_LIMIT} connection(s) waiting" in warnings[0]
        assert flood_ip in warnings[0]
        elapsed = time.monotonic() - dropping_since
        assert len(warnings) < stuck["dropped"], warnings
        assert len(warnings) <= elapsed + 2, warnings

        # The other slot serves new clients all along.
        other = connect(cluster, ips_for_slot(1, WORKERS)[0])
        answer = whoami(other)
        assert (answer["slot"], answer["pid"]) == (1, pids[1])
    finally:
        os.kill(pids[0], signal.SIGCONT)
        for sock in sockets:
            sock.close()

    cluster.wait_for(
        lambda s: slot_entry(s, 0)["pending"] == 0, what="slot 0's queue to empty after SIGCONT"
    )
    fresh = connect(cluster, ips_for_slot(0, WORKERS)[0])
    answer = whoami(fresh)
    assert (answer["slot"], answer["pid"]) == (0, pids[0])
    assert cluster.worker_pids() == pids


BACKOFF_LINE = re.compile(r"slot 0: worker keeps dying right after start; next try in ([0-9.]+)s")


def test_crash_loop_backs_off_and_recovers(
    start_cluster: StartCluster, connect: Connect, tmp_path: Path
) -> None:
    marker = tmp_path / "crash-now"
    cluster = start_cluster(
        app="tests.apps.crashy:sio", workers=WORKERS, env={"CRASHY_MARKER": str(marker)}
    )
    clients = {slot: connect(cluster, ips_for_slot(slot, WORKERS)[0]) for slot in range(WORKERS)}
    before = cluster.worker_pids()

    marker.write_text("crash\n")
    os.kill(before[0], signal.SIGKILL)

    states: set[str] = set()

    def looping(status: dict[str, Any]) -> bool:
        slot = slot_entry(status, 0)
        states.add(slot["state"])
        delays = [float(d) for d in BACKOFF_LINE.findall(cluster.log_text())]
        return slot["restarts"] >= 3 and "backoff" in states and len(delays) >= 2

    status = cluster.wait_for(looping, 30.0, what="slot 0 to crash-loop in backoff")
    assert status["state"] == "running"
    assert cluster.proc is not None and cluster.proc.poll() is None
    assert slot_entry(status, 1)["pid"] == before[1]
    assert slot_entry(status, 1)["restarts"] == 0
    # The other slot serves throughout.
    assert whoami(clients[1])["pid"] == before[1]
    delays = [float(d) for d in BACKOFF_LINE.findall(cluster.log_text())]
    assert all(a < b for a, b in zip(delays, delays[1:], strict=False)), delays
    assert "exited with status 1" in cluster.log_text()

    marker.unlink()

    def recovered(status: dict[str, Any]) -> bool:
        slot = slot_entry(status, 0)
        return slot["state"] == "ready" and slot["pid"] not in (None, before[0])

    status = cluster.wait_for(recovered, 30.0, what="slot 0 to recover once the marker is gone")
    new_pid = slot_entry(status, 0)["pid"]
    assert slot_entry(status, 0)["restarts"] >= 3
    assert wait_for_exit([before[0]], EXIT_TIMEOUT) == []
    wait_until(lambda: served_by(clients[0], 0, new_pid), 20.0, what="slot 0's client to return")
    assert whoami(clients[1])["pid"] == before[1]
    assert clients[1].disconnects == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_sigquit_stops_at_once(
    start_cluster: StartCluster, connect: Connect, tmp_path: Path
) -> None:
    cluster = start_cluster(
        workers=WORKERS, extra_args=write_config(tmp_path, f"graceful_timeout = {LONG_GRACEFUL}\n")
    )
    websocket = connect(cluster, ips_for_slot(0, WORKERS)[0])
    wait_for_upgrade(websocket)
    connect(cluster, ips_for_slot(1, WORKERS)[0], ("polling",))
    workers = list(cluster.worker_pids().values())

    cluster.signal(signal.SIGQUIT)

    # Far less than the graceful timeout: SIGQUIT does not wait for sessions to end.
    code = cluster.wait_exit(EXIT_TIMEOUT)
    if code is None:
        cluster.fail(f"master still runs {EXIT_TIMEOUT:g}s after SIGQUIT")
    # Handled, not the default action of SIGQUIT (a core dump).
    assert code == 0, cluster.log_text()
    assert wait_for_exit(workers, EXIT_TIMEOUT) == []
    assert "SIGQUIT: stopping now" in cluster.log_text()


@pytest.mark.parametrize("engine", ENGINES)
def test_run_dir_permissions_and_status_command(
    start_cluster: StartCluster, run_sioctl: Callable[..., Any], engine: str
) -> None:
    cluster = start_cluster(workers=WORKERS)
    assert os.stat(cluster.control_socket).st_mode & 0o777 == 0o600
    assert os.stat(cluster.run_dir).st_mode & 0o777 == 0o700

    expected = cluster.status()
    pids = {s["slot"]: s["pid"] for s in expected["slots"]}

    result = run_sioctl("status", "--title", cluster.title, "--run-dir", cluster.run_base)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert cluster.title in lines[0]
    assert str(cluster.pid) in lines[0]
    assert lines[0].endswith(f", {engine} workers"), lines[0]
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["SLOT"])
    assert lines[header].split() == [
        "SLOT", "PID", "STATE", "UPTIME", "RESTARTS", "CONNS", "SESSIONS", "PENDING",
        "REFUSED",
        "REDIS", "QUEUED", "PUBLISHED", "DROPPED",
    ]
    rows = [line.split() for line in lines[header + 1 :] if line.strip()]
    assert {int(row[0]): int(row[1]) for row in rows} == pids, result.stdout
    assert [row[2] for row in rows] == ["ready"] * WORKERS, result.stdout
    redis_column = lines[header].split().index("REDIS")
    # Subscribed: sioctl's manager reports its figures on both engines.
    assert [row[redis_column] for row in rows] == ["ok"] * WORKERS, result.stdout

    result = run_sioctl(
        "status", "--title", cluster.title, "--run-dir", cluster.run_base, "--json"
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    for key in ("title", "pid", "started_at", "state", "binds", "redis", "engine"):
        assert shown[key] == expected[key], key
    assert shown["engine"] == engine
    assert shown["pid"] == cluster.pid

    def summary(reply: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(s["slot"], s["pid"], s["state"], s["restarts"]) for s in reply["slots"]]

    assert summary(shown) == summary(expected)


@pytest.mark.parametrize("engine", ENGINES)
def test_embedded_redis_joins_workers_and_stops_with_the_master(
    start_cluster: StartCluster, connect: Connect, tmp_path: Path
) -> None:
    cluster = start_cluster(
        workers=WORKERS, redis_url=None, extra_args=write_config(tmp_path, "graceful_timeout = 5\n")
    )
    status = cluster.status()
    assert status["redis"].startswith("embedded "), status["redis"]
    redis_servers = children_of(cluster.pid, "redis-server")
    assert len(redis_servers) == 1, f"expected one embedded redis-server, found {redis_servers}"

    sender = connect(cluster, ips_for_slot(0, WORKERS)[0])
    receiver = connect(cluster, ips_for_slot(1, WORKERS)[0])
    assert whoami(sender)["slot"] == 0
    assert whoami(receiver)["slot"] == 1
    receiver.record("news")
    token = f"embedded-{uuid.uuid4().hex}"
    assert sender.call("broadcast", token, timeout=10) is True
    assert receiver.next_event("news") == token
    workers = list(cluster.worker_pids().values())

    cluster.signal(signal.SIGTERM)
    if cluster.wait_exit(5 + EXIT_TIMEOUT) is None:
        cluster.fail("master still runs after SIGTERM")
    assert wait_for_exit(workers + redis_servers, EXIT_TIMEOUT) == []


def daemon_args(app: str, port: int, run_dir: str, title: str) -> list[str]:
    return [
        "start", app, "--sticky", "--daemon", "-w", str(WORKERS),
        "-b", f"127.0.0.1:{port}", "--run-dir", run_dir, "--title", title,
    ]


def test_daemon_start_status_stop(
    run_sioctl: Callable[..., Any],
    connect: Connect,
    base: str,
    marked: tuple[dict[str, str], str],
) -> None:
    env, marker = marked
    port = free_port()
    title = f"d{port}"
    url = f"http://127.0.0.1:{port}"

    result = run_sioctl(*daemon_args("tests.apps.chat:sio", port, base, title), env=env)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    said = [line for line in result.stdout.splitlines() if title in line and url in line]
    assert said, f"no line names {title} and {url}:\n{result.stdout}"

    client = connect(url, ips_for_slot(1, WORKERS)[0])
    assert whoami(client)["slot"] == 1

    result = run_sioctl("status", "--title", title, "--run-dir", base, "--json", env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["title"] == title
    assert shown["state"] == "running"
    assert [s["state"] for s in shown["slots"]] == ["ready"] * WORKERS
    master = int(shown["pid"])
    workers = [int(s["pid"]) for s in shown["slots"]]
    redis_servers = children_of(master, "redis-server")
    assert len(redis_servers) == 1, redis_servers
    everything = [master, *workers, *redis_servers]
    # redis-server rewrites its environment block (process title), so it is found as a child.
    assert set(processes_with(marker)) | set(redis_servers) == set(everything)

    client.shutdown()
    result = run_sioctl("stop", "--title", title, "--run-dir", base, env=env)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert wait_for_exit(everything, EXIT_TIMEOUT) == []
    assert processes_with(marker) == []


def test_daemon_with_a_broken_app_fails_in_one_line(
    run_sioctl: Callable[..., Any], base: str, marked: tuple[dict[str, str], str]
) -> None:
    env, marker = marked
    port = free_port()
    title = f"d{port}"
    result = run_sioctl(*daemon_args("tests.apps.broken:sio", port, base, title), env=env)
    assert result.returncode == 1, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert title in lines[0]
    assert "always fails to import" in lines[0]
    wait_until(lambda: not processes_with(marker), EXIT_TIMEOUT, what="every process to exit")


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_ipv6_bind(start_cluster: StartCluster, connect: Connect) -> None:
    if not ipv6_loopback_available():
        pytest.skip("this machine cannot bind ::1")
    port = free_port("::1")
    cluster = start_cluster(workers=WORKERS, extra_args=["-b", f"[::1]:{port}"])
    client = connect(f"http://[::1]:{port}", "::1")
    wait_for_upgrade(client)
    answer = whoami(client)
    assert answer["remote_addr"] == "::1"
    assert answer["pid"] == cluster.worker_pids()[answer["slot"]]


ACCESS_FORMAT = '%(h)s "%(r)s" %(s)s'
ACCESS_LINE = re.compile(r'(\S+) "([A-Z]+) (\S+) HTTP/1\.[01]" (\d{3})')


@pytest.mark.parametrize("engine", ENGINES)
def test_access_log_uses_the_configured_format(
    start_cluster: StartCluster, connect: Connect, tmp_path: Path
) -> None:
    access_log = tmp_path / "access.log"
    options = write_config(tmp_path, f"access_log_format = {ACCESS_FORMAT!r}\n")
    cluster = start_cluster(
        workers=WORKERS, extra_args=[*options, "--access-logfile", str(access_log)]
    )
    ip = ips_for_slot(0, WORKERS)[0]
    client = connect(cluster, ip, ("polling",))
    assert whoami(client)["remote_addr"] == ip

    def polled() -> list[re.Match[str]]:
        try:
            text = access_log.read_text()
        except OSError:
            return []
        found = [ACCESS_LINE.fullmatch(line) for line in text.splitlines()]
        return [m for m in found if m and m[1] == ip and m[3].startswith("/socket.io/")]

    matches = wait_until(polled, 10.0, what=f"access log lines from {ip}")
    assert {m[2] for m in matches} >= {"GET", "POST"}, matches
    assert all(m[4] == "200" for m in matches), [m[0] for m in matches]
    # The configured format, and nothing else, on every line.
    lines = access_log.read_text().splitlines()
    assert all(ACCESS_LINE.fullmatch(line) for line in lines), lines

