"""The asyncio engine (issue 15): which engine serves an app, the ASGI lifespan in every
worker, boot errors, a drain that ends every connection, and sioctl dev. The tests common to
both engines are the sticky, failure and lifecycle ones, parametrized over conftest.ENGINES."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.clients import (
    free_port,
    ips_for_slot,
    make_client,
    wait_for_exit,
    wait_for_upgrade,
    wait_until,
    whoami,
)
from tests.support.cluster import (
    ENGINES,
    Cluster,
    assert_clean_failure,
    sioctl_command,
    start_args,
    worker_module,
)
from tests.support.paths import APPS_DIR, REPO_ROOT

ASYNC_APP = "tests.apps.asyncchat:app"
SYNC_APP = "tests.apps.chat:sio"
STARLETTE_APP = "tests.apps.starlette_app:app"
# App directories: async def controllers and middleware (asyncio); plain functions only.
ASYNC_APP_DIR = str(APPS_DIR / "asyncapp")
PLAIN_APP_DIR = str(APPS_DIR / "gwapp")
WORKERS = 2
GRACEFUL_TIMEOUT = 10
MARGIN = 10.0


@pytest.fixture
def run_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="sio")
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def worker_modules(cluster: Cluster) -> set[str]:
    """The module each worker process runs (``-m MODULE``)."""
    return {worker_module(pid) for pid in cluster.worker_pids().values()}


@pytest.mark.parametrize(
    ("app", "args", "module", "probed"),
    [
        (ASYNC_APP, (), "sioctl.worker.aio", True),
        ("tests.apps.asyncchat:sio", (), "sioctl.worker.aio", True),
        (SYNC_APP, (), "sioctl.worker", True),
        (ASYNC_APP, ("-k", "asyncio"), "sioctl.worker.aio", False),
        (SYNC_APP, ("--worker-class", "eventlet"), "sioctl.worker", False),
        (ASYNC_APP_DIR, (), "sioctl.worker.aio", True),
        (PLAIN_APP_DIR, (), "sioctl.worker", True),
        (PLAIN_APP_DIR, ("-k", "asyncio"), "sioctl.worker.aio", False),
    ],
)
def test_the_engine_follows_the_app_unless_k_names_it(
    start_cluster: Callable[..., Cluster], app: str, args: tuple[str, ...], module: str,
    probed: bool,
) -> None:
    # GWAPP_CENTRAL_KEY: the key one of gwapp's gateway apps reads from the environment.
    cluster = start_cluster(app=app, workers=WORKERS, extra_args=args,
                            env={"GWAPP_CENTRAL_KEY": "central-key"})
    assert worker_modules(cluster) == {module}
    engine = "asyncio" if module.endswith("aio") else "eventlet"
    assert f"starting {WORKERS} {engine} workers" in cluster.log_text()
    # The probe runs only when -k leaves the choice to the app.
    assert (f"engine: {engine} (the app is" in cluster.log_text()) == probed


@pytest.mark.parametrize(
    ("app", "k", "what", "needs"),
    [
        (ASYNC_APP, "eventlet", "socketio.ASGIApp holding a socketio.AsyncServer", "asyncio"),
        (SYNC_APP, "asyncio", "socketio.Server", "eventlet"),
    ],
)
def test_an_engine_mismatch_is_a_boot_error_naming_both(
    run_sioctl: Callable[..., subprocess.CompletedProcess[str]], run_dir: str,
    app: str, k: str, what: str, needs: str,
) -> None:
    result = run_sioctl(*start_args(app, free_port(), run_dir, "-w", "1", "-k", k))
    line = assert_clean_failure(result, what, f"needs the {needs} engine",
                                f"worker class is {k}")
    assert f"-k {needs}" in line


def test_a_failing_lifespan_startup_is_a_boot_error_with_its_reason(
    run_sioctl: Callable[..., subprocess.CompletedProcess[str]], run_dir: str,
) -> None:
    env = {**os.environ, "ASYNCCHAT_STARTUP_FAILS": "1"}
    result = run_sioctl(*start_args(ASYNC_APP, free_port(), run_dir, "-w", "2"), env=env)
    assert_clean_failure(result, "lifespan startup failed: database unreachable")


def test_a_starlette_app_mounting_socketio_is_served_on_every_core(
    start_cluster: Callable[..., Cluster],
) -> None:
    cluster = start_cluster(app=STARLETTE_APP, workers=WORKERS)
    assert worker_modules(cluster) == {"sioctl.worker.aio"}
    assert "the app is a starlette.Starlette holding a socketio.AsyncServer" in cluster.log_text()
    clients = []
    try:
        for slot in range(WORKERS):
            ip = ips_for_slot(slot, WORKERS)[0]
            client = make_client(ip, ("polling", "websocket"))
            clients.append(client)
            client.connect(cluster.url, socketio_path="ws/socket.io")
            wait_for_upgrade(client)
            answer = whoami(client)
            assert (answer["slot"], answer["remote_addr"]) == (slot, ip)
            assert answer["lifespan_started"] is True
            client.record("news")
        assert clients[0].call("broadcast", "to-everyone", timeout=10) is True
        for client in clients:
            assert client.next_event("news", 10) == "to-everyone"
    finally:
        for client in clients:
            client.shutdown()
    assert requests.get(f"{cluster.url}/health", timeout=10).text == "starlette ok"


def test_a_middleware_around_the_socketio_app_sees_each_websocket_request_last(
    start_cluster: Callable[..., Cluster],
) -> None:
    """An app wrapped in a middleware of its own: the websocket's ASGI request lasts until the
    websocket ends (the worker reads websockets from the protocol's callbacks only where its
    own routing gives the request to python-engineio)."""
    cluster = start_cluster(app="tests.apps.async_wrapped:app", workers=1, redis_url=None)
    ip = ips_for_slot(0, 1)[0]
    first, second = make_client(ip, ("websocket",)), make_client(ip, ("websocket",))
    try:
        first.connect(cluster.url)
        assert first.call("open_websockets", timeout=10) == 1
        second.connect(cluster.url)
        assert first.call("open_websockets", timeout=10) == 2
        assert second.call("open_websockets", timeout=10) == 2
        second.shutdown()
        assert wait_until(lambda: first.call("open_websockets", timeout=10) == 1, 10)
    finally:
        first.shutdown()
        second.shutdown()


def test_a_starlette_lifespan_that_raises_is_a_boot_error_with_its_reason(
    run_sioctl: Callable[..., subprocess.CompletedProcess[str]], run_dir: str,
) -> None:
    env = {**os.environ, "STARLETTE_STARTUP_FAILS": "1"}
    result = run_sioctl(*start_args(STARLETTE_APP, free_port(), run_dir, "-w", "1"), env=env)
    assert_clean_failure(result, "lifespan startup failed",
                         "RuntimeError: cannot open the database pool")


def test_an_app_without_a_server_is_refused_before_any_worker_starts(
    run_sioctl: Callable[..., subprocess.CompletedProcess[str]], run_dir: str,
) -> None:
    result = run_sioctl(*start_args("tests.apps.asyncchat:health_app", free_port(), run_dir))
    assert_clean_failure(result, "no socketio.Server, socketio.AsyncServer or engineio server")
    assert "started worker" not in result.stderr


def test_lifespan_runs_in_every_worker_and_the_drain_ends_every_connection(
    start_cluster: Callable[..., Cluster], connect: Callable[..., Any], tmp_path: Path
) -> None:
    marker = tmp_path / "shutdowns"
    cluster = start_cluster(
        app=ASYNC_APP, workers=WORKERS, env={"ASYNCCHAT_SHUTDOWN_MARKER": str(marker)},
        extra_args=["--graceful-timeout", str(GRACEFUL_TIMEOUT)])
    workers = cluster.worker_pids()
    for slot in range(WORKERS):
        websocket = connect(cluster, ips_for_slot(slot, WORKERS)[0])
        wait_for_upgrade(websocket)
        polling = connect(cluster, ips_for_slot(slot, WORKERS)[1], ("polling",))
        for client in (websocket, polling):
            answer = whoami(client)
            assert (answer["slot"], answer["lifespan_started"]) == (slot, True)
    assert requests.get(f"{cluster.url}/health", timeout=10).text == "ok"

    cluster.signal(signal.SIGTERM)
    code = cluster.wait_exit(GRACEFUL_TIMEOUT + MARGIN)
    if code is None:
        cluster.fail("master still runs after SIGTERM")
    assert code == 0, cluster.log_text()
    assert wait_for_exit(list(workers.values()), 5.0) == []
    log = cluster.log_text()
    # Every session was closed and every connection ended before the graceful timeout.
    assert log.count("drained: no connections left") == WORKERS, log
    assert "drain timed out" not in log, log
    # The lifespan shutdown ran once in each worker, while it drained.
    assert sorted(int(pid) for pid in marker.read_text().split()) == sorted(workers.values())


def test_gunicorn_worker_classes_read_as_engines(tmp_path: Path) -> None:
    def resolved(worker_class: str) -> subprocess.CompletedProcess[str]:
        config = tmp_path / "gunicorn.conf.py"
        config.write_text(f"worker_class = {worker_class!r}\n")
        return subprocess.run(
            sioctl_command("start", ASYNC_APP, "-c", str(config), "--print-config"),
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "SIOCTL_RUN_DIR": str(tmp_path / "run")},
        )

    for given, engine in (("uvicorn.workers.UvicornWorker", "asyncio"),
                          ("uvicorn_worker.UvicornWorker", "asyncio"), ("eventlet", "eventlet")):
        result = resolved(given)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["worker_class"] == engine
    # Any other gunicorn worker class is ignored with a warning, as before: the app decides.
    other = resolved("gevent")
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["worker_class"] == "auto"
    assert "ignoring gunicorn settings that do not apply: worker_class" in other.stderr
    # -k itself takes only the engines.
    refused = subprocess.run(
        sioctl_command("start", ASYNC_APP, "-k", "gevent", "--print-config"),
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "SIOCTL_RUN_DIR": str(tmp_path / "run")})
    assert refused.returncode != 0
    assert "'-k' / '--worker-class'" in refused.stderr and "'gevent'" in refused.stderr


def test_dev_serves_an_asyncio_app_alone(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIOCTL_")}
    env["SIOCTL_RUN_DIR"] = str(tmp_path / "run")
    with open(tmp_path / "dev.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sioctl", "dev", ASYNC_APP, "-b", f"127.0.0.1:{port}",
             "--no-reload"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, (tmp_path / "dev.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "dev.log").read_text()
                time.sleep(0.1)
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).text == "ok"
        assert "on asyncio" in (tmp_path / "dev.log").read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("engine", ENGINES)
def test_gunicorn_request_limits_hold_on_both_engines(
    start_cluster: Callable[..., Cluster], tmp_path: Path, engine: str
) -> None:
    config = tmp_path / "gunicorn.conf.py"
    config.write_text("limit_request_line = 1000\n")
    cluster = start_cluster(workers=1, redis_url=None, extra_args=["-c", str(config)])

    def status_of(request: bytes) -> str:
        with socket.create_connection(("127.0.0.1", cluster.port), timeout=10) as sock:
            sock.sendall(request)
            head = b""
            while b"\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
        return head.split(b"\r\n", 1)[0].split()[1].decode()

    query = b"EIO=4&transport=polling"
    assert status_of(b"GET /socket.io/?" + query + b" HTTP/1.1\r\nHost: x\r\n\r\n") == "200"
    long_line = b"GET /socket.io/?" + query + b"&pad=" + b"x" * 1000 + b" HTTP/1.1\r\n"
    assert status_of(long_line + b"Host: x\r\n\r\n") == "414"
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    assert status_of(b"GET /socket.io/?" + query + b" HTTP/1.1\r\nHost: x\r\n" + many
                     + b"\r\n") == "431"


def test_sigusr2_logs_the_memory_figures_of_an_asyncio_worker(
    start_cluster: Callable[..., Cluster], connect: Callable[..., Any]
) -> None:
    cluster = start_cluster(app=ASYNC_APP, workers=1, redis_url=None)
    client = connect(cluster, "127.0.0.2")
    wait_for_upgrade(client)
    whoami(client)
    (pid,) = cluster.worker_pids().values()
    os.kill(pid, signal.SIGUSR2)

    def dumped() -> dict[str, Any] | None:
        for line in cluster.log_text().splitlines():
            if " memory {" in line:
                return dict(json.loads(line.split(" memory ", 1)[1]))
        return None

    figures = wait_until(dumped, 10.0, what="the memory figures in the log")
    assert figures["structures"]["eio.sockets open"] == 1, figures["structures"]
    assert figures["rss_kib"] > 0 and figures["objects"] > 0
    assert whoami(client)["pid"] == pid  # the worker serves on
