"""Issue 13, items 7 and 8: the master supervises what it runs.

7. A worker that stops answering (SIGSTOP) stops receiving connections; what sits unread in its
   channel when the heartbeat kills it goes back to the slot's queue for its replacement.
8. The embedded redis-server is restarted when it dies, and status, metrics and the log say so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio
from prometheus_client import CollectorRegistry, generate_latest

from sioctl.cli import status
from sioctl.cluster import redis_supervisor
from sioctl.cluster.metrics import StatusCollector
from sioctl.cluster.redis_server import RedisServer
from sioctl.cluster.redis_supervisor import RedisSupervisor
from tests.support.clients import (
    BoundClient,
    children_of,
    free_port,
    ips_for_slot,
    make_client,
    wait_for_exit,
)
from tests.support.cluster import ENGINES
from tests.support.paths import APPS_DIR

WORKERS = 2
# The heartbeat kills a silent worker after this many seconds (--timeout).
TIMEOUT = 4
# Connections opened while a worker is stopped, before and after the master notices.
BEFORE_NOTICE = 40
AFTER_NOTICE = 40
# How long a client waits for its answer (kill after TIMEOUT, respawn, boot).
ANSWER_WAIT = 25.0

HANDSHAKE = (
    b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"
    b"Host: localhost\r\nConnection: close\r\n\r\n"
)


def open_requests(port: int, ips: list[str], count: int) -> list[socket.socket]:
    """``count`` connections from ``ips`` (in turn), each with an Engine.IO handshake sent."""
    sockets = []
    for i in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((ips[i % len(ips)], 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(HANDSHAKE)
        sockets.append(sock)
    return sockets


def answers(sockets: list[socket.socket], wait: float) -> dict[str, int]:
    """Read every connection to its end; counts ``served`` (200 with a sid), ``reset`` (closed
    or reset without an answer) and ``silent`` (no answer within ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    counts = {"served": 0, "reset": 0, "silent": 0}
    for sock in sockets:
        data = b""
        try:
            while True:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            counts["silent"] += 1
            continue
        except OSError:
            pass  # reset: counted below from what arrived
        finally:
            sock.close()
        served = data.startswith(b"HTTP/1.1 200") and b'"sid"' in data
        counts["served" if served else "reset"] += 1
    return counts


def slot_state(status: dict[str, Any], slot: int) -> dict[str, Any]:
    return next(s for s in status["slots"] if s["slot"] == slot)


@pytest.mark.parametrize("engine", ENGINES)
def test_connections_for_a_stopped_worker_reach_its_replacement(
    start_cluster: Callable[..., Any],
) -> None:
    cluster = start_cluster(workers=WORKERS, extra_args=["--timeout", str(TIMEOUT)])
    pids = cluster.worker_pids()
    ips = ips_for_slot(0, WORKERS)
    os.kill(pids[0], signal.SIGSTOP)
    try:
        # The master has not noticed yet: these go into the stopped worker's channel.
        sockets = open_requests(cluster.port, ips, BEFORE_NOTICE)
        cluster.wait_for(lambda s: slot_state(s, 0)["state"] == "stalled", timeout=TIMEOUT,
                         what="slot 0 to be marked stalled")
        # Noticed: these wait in the slot's queue instead.
        sockets += open_requests(cluster.port, ips, AFTER_NOTICE)
        counts = answers(sockets, ANSWER_WAIT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[0], signal.SIGCONT)

    assert counts == {"served": BEFORE_NOTICE + AFTER_NOTICE, "reset": 0, "silent": 0}
    slot = slot_state(cluster.status(), 0)
    assert slot["pid"] != pids[0] and slot["restarts"] == 1
    # Taken back from the dead worker's channel: those sent before the master noticed (all of
    # them, unless a loaded master marked the worker stalled before it had handed them all).
    requeued = slot["requeued"]
    assert 0 < requeued <= BEFORE_NOTICE
    other = slot_state(cluster.status(), 1)
    assert other["pid"] == pids[1] and other["restarts"] == 0
    log = cluster.log_text()
    assert log.count(f"worker pid {pids[0]} silent") == 1, log
    assert log.count(f"took back {requeued} connection(s) worker pid {pids[0]}") == 1, log


@pytest.mark.parametrize("engine", ENGINES)
def test_a_stopped_worker_that_resumes_serves_what_waited(
    start_cluster: Callable[..., Any],
) -> None:
    cluster = start_cluster(workers=WORKERS, extra_args=["--timeout", "30"])
    pids = cluster.worker_pids()
    os.kill(pids[0], signal.SIGSTOP)
    try:
        cluster.wait_for(lambda s: slot_state(s, 0)["state"] == "stalled", timeout=10.0,
                         what="slot 0 to be marked stalled")
        sockets = open_requests(cluster.port, ips_for_slot(0, WORKERS), AFTER_NOTICE)
        cluster.wait_for(lambda s: slot_state(s, 0)["pending"] == AFTER_NOTICE,
                         what="the connections to wait in slot 0's queue")
    finally:
        os.kill(pids[0], signal.SIGCONT)
    counts = answers(sockets, ANSWER_WAIT)
    assert counts == {"served": AFTER_NOTICE, "reset": 0, "silent": 0}
    slot = slot_state(cluster.status(), 0)
    assert (slot["pid"], slot["state"], slot["restarts"]) == (pids[0], "ready", 0)
    assert f"worker pid {pids[0]} answers again" in cluster.log_text()


# ----------------------------------------------------------------------------- embedded Redis

# How long the workers may take to get broadcasts across again after the kill.
REDIS_BACK_WAIT = 20.0
ROUNDS = 5


def metric_samples(url: str) -> dict[str, float]:
    """The unlabelled samples of a Prometheus text page."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def broadcasts_crossing(sender: BoundClient, receiver: BoundClient, rounds: int) -> int:
    """How many of ``rounds`` broadcasts from ``sender`` reach ``receiver``, 2 s each."""
    crossed = 0
    for i in range(rounds):
        tag = f"b{time.monotonic_ns()}-{i}"
        with contextlib.suppress(socketio.exceptions.SocketIOError):
            sender.call("broadcast", tag, timeout=2)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                if receiver.next_event("news", timeout=deadline - time.monotonic()) == tag:
                    crossed += 1
                    break
            except queue.Empty:
                break
    return crossed


@pytest.mark.parametrize("engine", ENGINES)
def test_killed_embedded_redis_is_restarted_and_broadcasts_cross_again(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient],
    run_sioctl: Callable[..., Any],
) -> None:
    metrics_port = free_port()
    cluster = start_cluster(workers=WORKERS, redis_url=None,
                            extra_args=["--metrics-bind", f"127.0.0.1:{metrics_port}"])
    sender = connect(cluster, ips_for_slot(0, WORKERS)[0])
    receiver = connect(cluster, ips_for_slot(1, WORKERS)[0])
    receiver.record("news")
    assert broadcasts_crossing(sender, receiver, ROUNDS) == ROUNDS
    [redis_pid] = children_of(cluster.pid, "redis-server")

    os.kill(redis_pid, signal.SIGKILL)
    assert wait_for_exit([redis_pid], 5.0) == []
    # Bounded: the workers reconnect by themselves once the master has restarted Redis.
    deadline = time.monotonic() + REDIS_BACK_WAIT
    while time.monotonic() < deadline and broadcasts_crossing(sender, receiver, 1) == 0:
        pass
    assert broadcasts_crossing(sender, receiver, ROUNDS) == ROUNDS

    [new_pid] = children_of(cluster.pid, "redis-server")
    embedded = cluster.status()["embedded_redis"]
    assert (embedded["pid"], embedded["state"], embedded["restarts"]) == (new_pid, "up", 1)
    samples = metric_samples(f"http://127.0.0.1:{metrics_port}/metrics")
    assert samples["sioctl_embedded_redis_up"] == 1
    assert samples["sioctl_embedded_redis_restarts_total"] == 1
    shown = run_sioctl("status", "--run-dir", cluster.run_base, "--title", cluster.title)
    assert f"redis-server pid {new_pid}, up" in shown.stdout and "1 restart" in shown.stdout, (
        shown.stdout + shown.stderr)
    log = cluster.log_text()
    assert log.count(f"embedded redis-server pid {redis_pid} was killed by SIGKILL") == 1, log
    # Still the same socket: the workers were never told another address.
    assert embedded["url"] == f"unix://{cluster.run_dir}/redis.sock"


def registry_for(embedded: dict[str, Any]) -> CollectorRegistry:
    """A registry rendering a status that has only the embedded Redis."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(lambda: {"slots": [], "embedded_redis": embedded}))
    return registry


def kill_and_notice(supervisor: RedisSupervisor) -> float:
    """SIGKILL the supervised redis-server and check until the supervisor notices; returns the
    monotonic time of the check that did. (/proc shows a killed redis-server as a zombie a
    moment before waitpid can reap it: its other threads are still exiting.)"""
    pid = supervisor.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while True:
        now = time.monotonic()
        supervisor.check(now)
        if supervisor.pid != pid:
            return now
        assert now < deadline, f"redis-server pid {pid} still running"
        time.sleep(0.01)


def check_until(supervisor: RedisSupervisor, state: str, timeout: float = 10.0) -> None:
    """Drive the supervisor as the master's loop does until it reaches ``state``."""
    deadline = time.monotonic() + timeout
    while supervisor.state != state:
        assert time.monotonic() < deadline, f"still {supervisor.state}, not {state}"
        supervisor.check(time.monotonic())
        time.sleep(redis_supervisor.START_POLL)


def test_redis_supervisor_shows_the_outage_and_backs_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(str(tmp_path), unix_socket=True)
    server.start()
    supervisor = RedisSupervisor(server)
    try:
        first = server.pid
        with caplog.at_level(logging.INFO, logger="sioctl.master"):
            kill_and_notice(supervisor)
        # Restarted at once (one quick death gets no delay). A quick redis-server may already
        # answer by the check that noticed the death (seen in CI), so the restarting state's
        # status line and metric are checked on its description.
        starting = supervisor.describe()
        assert starting["state"] in ("starting", "up") and starting["restarts"] == 1
        assert starting["pid"] not in (None, first)
        restarting = {**starting, "state": "starting"}
        shown = status.embedded_redis_line(restarting, restarting["since"] + 7)
        assert shown.startswith("redis-server down since ")
        assert shown.endswith("(7s, restarting), 1 restart")
        assert "sioctl_embedded_redis_up 0.0" in \
            generate_latest(registry_for(restarting)).decode()
        assert caplog.records[0].getMessage() == (
            f"embedded redis-server pid {first} was killed by SIGKILL; restarting it on "
            f"{server.url}")

        check_until(supervisor, "up")
        assert supervisor.restarts == 1 and server.pid not in (None, first)
        assert server.answers()
        shown = status.embedded_redis_line(supervisor.describe(), time.time())
        assert shown == f"redis-server pid {server.pid}, up 0s, 1 restart"

        # It keeps dying right after its start: the next tries wait longer and longer, and
        # status says it is down meanwhile.
        delays = []
        for _ in range(3):
            now = kill_and_notice(supervisor)
            assert supervisor.restart_at is not None
            delays.append(round(supervisor.restart_at - now, 2))
            down = supervisor.describe()
            assert (down["state"], down["pid"]) == ("down", None)
            assert status.embedded_redis_line(down, down["since"]).startswith(
                "redis-server down since ")
            check_until(supervisor, "up")
        assert delays == [0.25, 0.5, 1.0]
        assert supervisor.restarts == 4
        page = generate_latest(registry_for(supervisor.describe())).decode()
        assert "sioctl_embedded_redis_up 1.0" in page
        assert "sioctl_embedded_redis_restarts_total 4.0" in page
    finally:
        server.stop()


def test_redis_that_cannot_start_again_is_retried_with_backoff(tmp_path: Path) -> None:
    server = RedisServer(str(tmp_path), unix_socket=True)
    server.start()
    supervisor = RedisSupervisor(server)
    try:
        server.executable = "/bin/false"  # from now on it exits at once
        kill_and_notice(supervisor)  # restarted at once; it exits at start
        delays = []
        for _ in range(3):
            deadline = time.monotonic() + 5.0
            while supervisor.state == "starting" and time.monotonic() < deadline:
                time.sleep(0.02)
                now = time.monotonic()
                supervisor.check(now)
            assert supervisor.describe()["state"] == "down"
            assert supervisor.restart_at is not None
            delays.append(round(supervisor.restart_at - now, 2))
            supervisor.check(supervisor.restart_at)  # due: tries again
        assert delays == [0.25, 0.5, 1.0]
        assert supervisor.restarts == 4
    finally:
        server.stop()


# --------------------------------------------- 8: what a restarted Redis lost is written again

FWAPP = APPS_DIR / "fwapp"


def kill_embedded_redis(cluster: Any) -> None:
    """SIGKILL the cluster's embedded redis-server and wait for the master's new one."""
    [redis_pid] = children_of(cluster.pid, "redis-server")
    os.kill(redis_pid, signal.SIGKILL)
    assert wait_for_exit([redis_pid], 5.0) == []
    deadline = time.monotonic() + REDIS_BACK_WAIT
    while time.monotonic() < deadline:
        embedded = cluster.status()["embedded_redis"]
        if embedded["state"] == "up" and embedded["pid"] != redis_pid:
            return
        time.sleep(0.1)
    raise AssertionError("the embedded redis-server did not come back")


def test_socket_id_claims_survive_a_redis_restart(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient],
) -> None:
    """io.generate_id ids stay unique across workers after the embedded Redis lost its data:
    the worker holding an id writes its claim again, so the same id on the other worker is
    still refused (before: the claim was gone, and both workers accepted the id)."""
    cluster = start_cluster(app=str(FWAPP), workers=WORKERS, redis_url=None,
                            extra_args=["--env", "ids"])
    holder = connect(f"{cluster.url}?token=good&uid=7", ips_for_slot(1, WORKERS)[0])
    kill_embedded_redis(cluster)

    def second_is_refused() -> bool:
        errors: queue.Queue[Any] = queue.Queue()
        second = make_client(ips_for_slot(0, WORKERS)[0], reconnection=False)
        second.on("connect_error", errors.put)
        try:
            second.connect(f"{cluster.url}?token=good&uid=7")
        except socketio.exceptions.ConnectionError:
            return "already in use" in str(errors.get(timeout=5))
        finally:
            second.shutdown()
        return False

    # The claim comes back as soon as the holder's worker has resubscribed (about a second).
    deadline = time.monotonic() + REDIS_BACK_WAIT
    refused = False
    while time.monotonic() < deadline and not refused:
        time.sleep(0.5)
        refused = second_is_refused()
    assert refused, "user-7 was accepted on a second worker while the first still holds it"
    assert holder.connected


def test_gateway_users_stay_reachable_after_a_redis_restart(
    start_cluster: Callable[..., Any],
) -> None:
    """The gateway's registry of who is online lives in Redis: a worker writes its sockets'
    entries again once Redis is back (before: the online user answered 404 until it
    reconnected)."""
    from sioctl.worker.gateway.wire import EXCHANGE
    from tests.support.gateway import APP_DIR, SLOT1, GwClient, http_body, post

    # The central key test_hardening_gateway.py's clusters use.
    env = {"GWAPP_CENTRAL_KEY": "central-hardening-key"}

    cluster = start_cluster(app=str(APP_DIR), workers=WORKERS, redis_url=None,
                            extra_args=["--env", "prod"], env=env)
    user = GwClient(SLOT1[0])
    session = requests.Session()
    try:
        user.connect(cluster.url)
        assert post(session, cluster, http_body(user.user_id, "before")).status_code == 200
        assert user.expect(EXCHANGE)["data"]["payload"] == "before"
        kill_embedded_redis(cluster)
        deadline = time.monotonic() + REDIS_BACK_WAIT
        answered = 0
        while time.monotonic() < deadline:
            answered = post(session, cluster, http_body(user.user_id, "after")).status_code
            if answered == 200:
                break
            time.sleep(0.2)
        assert answered == 200
        assert user.expect(EXCHANGE)["data"]["payload"] == "after"
    finally:
        user.sio.shutdown()
        session.close()

