"""A FastAPI app (``socketio.ASGIApp(sio, other_asgi_app=fastapi_app)``, tests/apps/fastapi_app.py)
on a 2-worker sticky cluster: the engine probe picks asyncio, long-polling sessions stay on their
worker, FastAPI's routes answer, its lifespan runs once in every worker (startup before ready,
shutdown while draining), and broadcasts reach the clients of both workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.clients import bound_session, ips_for_slot, make_client, whoami
from tests.support.cluster import Cluster

pytest.importorskip("fastapi")

FASTAPI_APP = "tests.apps.fastapi_app:app"
WORKERS = 2


def test_a_fastapi_app_runs_on_every_worker(
    start_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    lifespan_log = tmp_path / "lifespan"
    cluster = start_cluster(app=FASTAPI_APP, workers=WORKERS,
                            env={"FASTAPI_LIFESPAN_LOG": str(lifespan_log)})
    assert "engine: asyncio (the app is a socketio.ASGIApp holding a socketio.AsyncServer" \
        in cluster.log_text()
    pids = cluster.worker_pids()
    assert sorted(lifespan_log.read_text().splitlines()) == sorted(
        f"startup {pid}" for pid in pids.values())
    clients: list[Any] = []
    try:
        for slot in range(WORKERS):
            ip = ips_for_slot(slot, WORKERS)[0]
            # Long-polling only: every request of the session must reach the same worker.
            client = make_client(ip, ("polling",))
            clients.append(client)
            client.connect(cluster.url)
            for _ in range(3):
                answer = whoami(client)
                assert (answer["slot"], answer["pid"]) == (slot, pids[slot])
                assert answer["lifespan_started"] is True
            client.record("news")
            route = bound_session(ip).get(f"{cluster.url}/api/worker", timeout=10)
            assert route.status_code == 200
            assert route.json() == {"pid": pids[slot], "slot": slot, "lifespan_started": True}
        assert clients[0].call("broadcast", "to-everyone", timeout=10) is True
        for client in clients:
            assert client.next_event("news", 10) == "to-everyone"
    finally:
        for client in clients:
            client.shutdown()
    assert requests.get(f"{cluster.url}/nowhere", timeout=10).status_code == 404
    survivors = cluster.stop()
    assert survivors == []
    lines = lifespan_log.read_text().splitlines()
    assert sorted(lines) == sorted([*(f"startup {pid}" for pid in pids.values()),
                                    *(f"shutdown {pid}" for pid in pids.values())])
