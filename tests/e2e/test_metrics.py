"""Prometheus metrics for the whole cluster, served by the master on --metrics-bind."""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import pytest
import requests

import sioctl
from tests.support.clients import free_port, ips_for_slot, wait_until, whoami
from tests.support.cluster import ENGINES
from tests.support.metrics import sample


@pytest.mark.parametrize("engine", ENGINES)
def test_metrics_cover_every_worker(start_cluster: Any, connect: Any, engine: str) -> None:
    # sioctl's manager reports its Redis figures on both engines.
    port = free_port()
    cluster = start_cluster(extra_args=["--metrics-bind", f"127.0.0.1:{port}"])
    url = f"http://127.0.0.1:{port}/metrics"
    clients = [connect(cluster, ips_for_slot(slot, 2)[0]) for slot in (0, 1, 1)]
    for client in clients:
        whoami(client)
    for client in clients:
        client.call("broadcast", "hello", timeout=10)

    def page() -> str | None:
        text = requests.get(url, timeout=10).text
        sessions = [sample(text, "sioctl_worker_sessions", s) for s in (0, 1)]
        heard = [sample(text, "sioctl_redis_delivery_seconds_count", s) for s in (0, 1)]
        return text if sessions == [1.0, 2.0] and all(heard) else None

    text = wait_until(page, 10, what="both workers' heartbeats in the metrics")
    assert sample(text, "sioctl_workers_ready") == 2.0
    for slot in (0, 1):
        assert (sample(text, "sioctl_handoffs_total", slot) or 0) >= 1
        assert sample(text, "sioctl_worker_restarts_total", slot) == 0.0
    assert "# TYPE sioctl_worker_restarts_total counter" in text
    assert_redis_figures(text)

    assert requests.get(f"http://127.0.0.1:{port}/other", timeout=10).status_code == 404
    assert requests.post(url, timeout=10).status_code == 405
    # A scraper that says nothing does not hold the master: the cluster keeps serving.
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        assert whoami(clients[0])["slot"] == 0
        assert requests.get(url, timeout=10).status_code == 200


def assert_redis_figures(text: str) -> None:
    """sioctl's manager's figures after one broadcast from slot 0 and two from slot 1."""
    assert sample(text, "sioctl_redis_subscribed", 0) == 1.0
    assert sample(text, "sioctl_redis_subscribed", 1) == 1.0
    for slot in (0, 1):
        assert sample(text, "sioctl_redis_dropped_total", slot) == 0.0
    # Each broadcast went through Redis once from the worker that sent it.
    published = [sample(text, "sioctl_redis_published_total", s) or 0 for s in (0, 1)]
    assert published[0] >= 1 and published[1] >= 2
    # Each worker heard the other's broadcasts through Redis and timed them.
    for slot in (0, 1):
        assert (sample(text, "sioctl_redis_delivery_seconds_count", slot) or 0) >= 1
        inf = re.search(rf'^sioctl_redis_delivery_seconds_bucket{{le="\+Inf",slot="{slot}"}} '
                        rf'(\S+)$', text, re.M)
        assert inf and float(inf.group(1)) == sample(
            text, "sioctl_redis_delivery_seconds_count", slot)


def test_metrics_port_in_use_is_a_one_line_error(run_sioctl: Any, tmp_path: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_sioctl(
            "start", "tests.apps.chat:sio", "-w", "1", "-b", "127.0.0.1:0",
            "--run-dir", str(tmp_path), "--title", "metricsbusy",
            "--metrics-bind", f"127.0.0.1:{port}",
        )
    assert result.returncode == 1
    assert f"metrics: cannot bind 127.0.0.1:{port}" in result.stderr


def labelled(text: str, name: str, role: str, slot: str) -> float | None:
    """The value of ``name{role=...,slot=...}`` in a Prometheus text page."""
    match = re.search(rf'^{re.escape(name)}{{role="{role}",slot="{slot}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else None


@pytest.mark.parametrize("engine", ENGINES)
def test_process_build_and_socketio_metrics(
    start_cluster: Any, connect: Any, run_sioctl: Any, engine: str
) -> None:
    port = free_port()
    cluster = start_cluster(extra_args=["--metrics-bind", f"127.0.0.1:{port}"])
    url = f"http://127.0.0.1:{port}/metrics"
    # The address is in the log at start and in status (with the version).
    assert f"metrics: {url}" in cluster.log_text()
    shown = cluster.status()
    assert (shown["metrics"], shown["version"]) == (url, sioctl.__version__)
    result = run_sioctl("status", "--title", cluster.title, "--run-dir", cluster.run_base)
    assert f"metrics: {url}" in result.stdout and f"sioctl {sioctl.__version__}" in result.stdout

    first, second = (connect(cluster, ips_for_slot(slot, 2)[0]) for slot in (0, 1))
    assert whoami(first)["slot"] == 0 and whoami(second)["slot"] == 1
    for n in range(3):
        assert first.call("echo", n, timeout=10) == n  # an event, answered by an ack
    assert second.call("broadcast", "hi", timeout=10)  # an event that emits once

    def page() -> str | None:
        text = requests.get(url, timeout=10).text
        received = [sample(text, "sioctl_socketio_events_received_total", s) for s in (0, 1)]
        return text if received == [4.0, 2.0] else None

    text = wait_until(page, 10, what="the events in the metrics")
    # Slot 0 heard the broadcast through Redis: its manager delivered it, its server emitted
    # nothing.
    assert [sample(text, "sioctl_socketio_emits_total", s) for s in (0, 1)] == [0.0, 1.0]
    assert f'sioctl_build_info{{version="{sioctl.__version__}"}} 1.0' in text
    for role, slot in (("master", ""), ("worker", "0"), ("worker", "1")):
        for name in ("process_resident_memory_bytes", "process_open_fds",
                     "process_cpu_seconds_total"):
            assert (labelled(text, name, role, slot) or 0) > 0, (name, role, slot)
        started = labelled(text, "process_start_time_seconds", role, slot)
        assert started is not None and started <= time.time()
    assert "# TYPE process_cpu_seconds_total counter" in text
