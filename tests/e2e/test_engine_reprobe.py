"""The engine is probed again on HUP (cluster/engine_probe.py ``Reprobe``): an app module
rewritten from a socketio.Server to an ASGIApp (and back) is served by the other engine after the
rolling restart; an app that no longer holds a server keeps the running workers, with one log
line saying why."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.clients import wait_until
from tests.support.cluster import WORKER_MODULES, Cluster, worker_module

SYNC_SOURCE = '''import socketio

sio = socketio.Server()
app = sio


@sio.event
def engine(sid, data=None):
    return "sync"
'''
ASYNC_SOURCE = '''import socketio

sio = socketio.AsyncServer(async_mode="asgi")
app = socketio.ASGIApp(sio)


@sio.event
async def engine(sid, data=None):
    return "async"
'''
NO_SERVER_SOURCE = '''app = "not a server"
'''
CANNOT = "rolling restart stopped before it began, the app cannot be served now: "


def write(app_file: Path, source: str) -> None:
    # No bytecode is kept (PYTHONDONTWRITEBYTECODE below), so a rewrite within the same
    # second cannot be read from a stale .pyc.
    app_file.write_text(source)


def rolled_to(cluster: Cluster, before: int, engine: str) -> dict[str, Any]:
    """Wait until the one slot has a new ready worker and the status names ``engine``."""
    return cluster.wait_for(
        lambda s: s["engine"] == engine and s["slots"][0]["pid"] not in (None, before)
        and s["slots"][0]["state"] == "ready" and s["slots"][0]["standby_pid"] is None,
        60.0, f"a ready {engine} worker after HUP")


def test_hup_probes_the_engine_again(
    start_cluster: Callable[..., Cluster], connect: Any, tmp_path: Path
) -> None:
    app_dir = tmp_path / "hupapp"
    app_dir.mkdir()
    app_file = app_dir / "hupmain.py"
    write(app_file, SYNC_SOURCE)
    cluster = start_cluster(app="hupmain:app", workers=1, redis_url=None,
                            extra_args=("--chdir", str(app_dir)),
                            env={"PYTHONDONTWRITEBYTECODE": "1"})
    first = cluster.worker_pids()[0]
    assert worker_module(first) == WORKER_MODULES["eventlet"]

    # sync -> async: the probe runs again and the replacement is an asyncio worker.
    write(app_file, ASYNC_SOURCE)
    cluster.signal(signal.SIGHUP)
    second = int(rolled_to(cluster, first, "asyncio")["slots"][0]["pid"])
    assert worker_module(second) == WORKER_MODULES["asyncio"]
    assert connect(cluster, "127.0.0.1", ("websocket",)).call("engine") == "async"
    assert "engine: asyncio instead of eventlet" in cluster.log_text()

    # No server any more: the running worker stays, and the log says why, once.
    write(app_file, NO_SERVER_SOURCE)
    cluster.signal(signal.SIGHUP)
    wait_until(lambda: CANNOT in cluster.log_text(), 60.0, what="the failed probe's line")
    assert cluster.log_text().count(CANNOT) == 1
    assert "rolling restart of" not in cluster.log_text().split(CANNOT, 1)[1]
    status = cluster.status()
    assert (status["engine"], status["slots"][0]["pid"]) == ("asyncio", second)
    assert connect(cluster, "127.0.0.1", ("websocket",)).call("engine") == "async"

    # async -> sync.
    write(app_file, SYNC_SOURCE)
    cluster.signal(signal.SIGHUP)
    third = int(rolled_to(cluster, second, "eventlet")["slots"][0]["pid"])
    assert worker_module(third) == WORKER_MODULES["eventlet"]
    assert connect(cluster, "127.0.0.1", ("websocket",)).call("engine") == "sync"
