"""What clients and the master see when workers or the master die, stop or reload."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import (
    BoundClient,
    children_of,
    ips_for_slot,
    try_whoami,
    wait_for_exit,
    wait_for_upgrade,
    wait_until,
    whoami,
)
from tests.support.cluster import ENGINES

WORKERS = 2
# Graceful timeout given to clusters whose shutdown the tests time, and the margin on top.
GRACEFUL_TIMEOUT = 5  # gunicorn validates it as an int
MARGIN = 10.0


def one_client_per_slot(
    connect: Callable[..., BoundClient], cluster: Any
) -> dict[int, BoundClient]:
    clients = {}
    for slot in range(WORKERS):
        client = connect(cluster, ips_for_slot(slot, WORKERS)[0])
        wait_for_upgrade(client)
        assert whoami(client)["slot"] == slot
        clients[slot] = client
    return clients


def graceful_config(tmp_path: Path) -> list[str]:
    """Options that give the cluster a short graceful timeout, through a gunicorn config file."""
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(f"graceful_timeout = {GRACEFUL_TIMEOUT}\n")
    return ["-c", str(config)]


def served_by(client: BoundClient, slot: int, pid: int) -> bool:
    answer = try_whoami(client)
    return answer is not None and answer["slot"] == slot and answer["pid"] == pid


@pytest.mark.parametrize("engine", ENGINES)
def test_killed_worker_is_replaced_and_only_its_clients_reconnect(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient]
) -> None:
    cluster = start_cluster(workers=WORKERS)
    clients = one_client_per_slot(connect, cluster)
    before = cluster.worker_pids()
    survivor_sid = clients[1].get_sid()

    os.kill(before[0], signal.SIGKILL)

    def replaced(status: dict[str, Any]) -> bool:
        slot = next(s for s in status["slots"] if s["slot"] == 0)
        return slot["pid"] not in (None, before[0]) and slot["state"] == "ready"

    status = cluster.wait_for(replaced, what="slot 0 to get a new ready worker")
    slots = {s["slot"]: s for s in status["slots"]}
    new_pid = slots[0]["pid"]
    assert slots[0]["restarts"] == 1
    assert slots[1]["pid"] == before[1]
    assert slots[1]["restarts"] == 0
    assert wait_for_exit([before[0]], 5.0) == []

    # The killed worker's client notices, reconnects on its own and lands on the same slot.
    wait_until(lambda: clients[0].disconnects >= 1, what="the client of slot 0 to notice")
    wait_until(lambda: served_by(clients[0], 0, new_pid), 20.0, what="slot 0's client to return")
    assert whoami(clients[0])["remote_addr"] == clients[0].source_ip

    # The other worker's client never noticed anything.
    answer = whoami(clients[1])
    assert answer["pid"] == before[1]
    assert clients[1].get_sid() == survivor_sid
    assert answer["sid"] == survivor_sid
    assert clients[1].disconnects == 0


def test_stopped_worker_does_not_hold_up_the_other_slot(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient]
) -> None:
    cluster = start_cluster(workers=WORKERS)
    clients = one_client_per_slot(connect, cluster)
    pids = cluster.worker_pids()
    os.kill(pids[0], signal.SIGSTOP)
    try:
        for _ in range(3):
            assert whoami(clients[1])["pid"] == pids[1]
        for ip in ips_for_slot(1, WORKERS)[1:3]:
            newcomer = connect(cluster, ip)
            wait_for_upgrade(newcomer)
            answer = whoami(newcomer)
            assert answer["slot"] == 1
            assert answer["pid"] == pids[1]
        assert clients[1].disconnects == 0
    finally:
        os.kill(pids[0], signal.SIGCONT)
    # Once continued, the stopped worker serves its session again.
    wait_until(lambda: served_by(clients[0], 0, pids[0]), 20.0, what="slot 0 to serve again")


@pytest.mark.parametrize("engine", ENGINES)
def test_sigterm_drains_and_exits_zero(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient], tmp_path: Path
) -> None:
    cluster = start_cluster(workers=WORKERS, extra_args=graceful_config(tmp_path))
    one_client_per_slot(connect, cluster)
    connect(cluster, ips_for_slot(0, WORKERS)[1], ("polling",))
    workers = list(cluster.worker_pids().values())

    cluster.signal(signal.SIGTERM)

    code = cluster.wait_exit(GRACEFUL_TIMEOUT + MARGIN)
    if code is None:
        cluster.fail(f"master still runs {GRACEFUL_TIMEOUT + MARGIN:g}s after SIGTERM")
    assert code == 0, cluster.log_text()
    assert wait_for_exit(workers, 5.0) == []


def test_sigkill_of_the_master_takes_workers_and_embedded_redis_along(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient]
) -> None:
    # No --redis with 2 workers: the master runs its own redis-server.
    cluster = start_cluster(workers=WORKERS, redis_url=None)
    one_client_per_slot(connect, cluster)
    workers = list(cluster.worker_pids().values())
    redis_servers = children_of(cluster.pid, "redis-server")
    assert len(redis_servers) == 1, f"expected one embedded redis-server, found {redis_servers}"

    cluster.signal(signal.SIGKILL)
    assert cluster.wait_exit(5.0) == -signal.SIGKILL

    left = wait_for_exit(workers + redis_servers, 10.0)
    assert left == [], f"processes outlived the killed master: {left}"


@pytest.mark.parametrize("engine", ENGINES)
def test_sighup_replaces_workers_one_slot_at_a_time(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient], tmp_path: Path
) -> None:
    cluster = start_cluster(workers=WORKERS, extra_args=graceful_config(tmp_path))
    clients = one_client_per_slot(connect, cluster)
    before = cluster.worker_pids()

    cluster.signal(signal.SIGHUP)

    # Sample the status often: a replacement takes a fraction of a second to boot.
    samples: list[dict[int, dict[str, Any]]] = []

    def all_replaced() -> dict[str, Any] | None:
        status = cluster.try_status()
        if status is None:
            return None
        samples.append({s["slot"]: s for s in status["slots"]})
        done = all(
            s["pid"] not in (None, before[s["slot"]])
            and s["state"] == "ready"
            and s["standby_pid"] is None
            for s in status["slots"]
        )
        return status if done else None

    status = wait_until(all_replaced, 60.0, 0.02, "every slot to get a new ready worker")
    assert status["state"] == "running"
    after = {s["slot"]: s["pid"] for s in status["slots"]}

    for seen in samples:
        # One slot at a time, and never a slot without a ready worker.
        standing_by = [slot for slot, s in seen.items() if s["standby_pid"] is not None]
        assert len(standing_by) <= 1, f"several replacements at once: {seen}"
        for slot, s in seen.items():
            assert s["state"] == "ready" and s["pid"], f"slot {slot} out of service: {seen}"
            # While a replacement boots the old worker keeps serving; the standby is the one
            # that takes over.
            if s["standby_pid"] is not None:
                assert s["pid"] == before[slot], seen
                assert s["standby_pid"] == after[slot], seen
        # In order: slot 1 is touched only once slot 0 has its new worker.
        if seen[1]["standby_pid"] is not None or seen[1]["pid"] != before[1]:
            assert seen[0]["pid"] == after[0], f"slot 1 restarted before slot 0: {seen}"

    # The samples did watch each replacement boot (else the checks above prove nothing).
    for slot in range(WORKERS):
        assert any(seen[slot]["standby_pid"] == after[slot] for seen in samples), (
            f"no sample saw slot {slot}'s replacement starting"
        )

    # Each old worker is told to drain only after its replacement is ready, and then exits.
    assert wait_for_exit(list(before.values()), GRACEFUL_TIMEOUT + MARGIN) == []
    # A dead pid may not be reaped (and logged) yet: wait for the master to say so.
    exit_lines = [f"slot {slot}: old worker pid {pid} exited" for slot, pid in before.items()]
    wait_until(
        lambda: all(line in cluster.log_text() for line in exit_lines),
        MARGIN,
        what="the master to log each old worker's exit",
    )
    log = cluster.log_text()
    for slot in range(WORKERS):
        ready = log.find(f"slot {slot}: worker pid {after[slot]} ready")
        draining = log.find(f"slot {slot}: draining old worker pid {before[slot]}")
        exited = log.find(f"slot {slot}: old worker pid {before[slot]} exited")
        assert -1 < ready < draining < exited, f"slot {slot} out of order:\n{log}"
    assert log.find(f"slot 0: worker pid {after[0]} ready") < log.find(
        "slot 1: starting its replacement worker"
    ), log

    for slot, client in clients.items():

        def back(client: BoundClient = client, slot: int = slot) -> bool:
            return served_by(client, slot, after[slot])

        wait_until(back, 20.0, what=f"slot {slot}'s client to be served by the new worker")
