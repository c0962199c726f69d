"""Flask-SocketIO apps (``SocketIO(flask_app)``) on a sticky cluster: sioctl serves the Flask app,
its routes and its Socket.IO handlers, and Flask-SocketIO's emits cross workers through Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.clients import BoundClient, bound_session, ips_for_slot, wait_for_upgrade, whoami

pytest.importorskip("flask_socketio")

APP = "tests.apps.flask_chat:app"
WORKERS = 2
DELIVERY_TIMEOUT = 10.0


def one_client_per_slot(connect: Callable[..., BoundClient], cluster: Any) -> list[BoundClient]:
    clients = []
    for slot in range(WORKERS):
        client = connect(cluster, ips_for_slot(slot, WORKERS)[0], ("polling", "websocket"))
        wait_for_upgrade(client)
        clients.append(client)
    return clients


def test_flask_routes_and_handlers_are_served_sticky(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient]
) -> None:
    cluster = start_cluster(app=APP, workers=WORKERS)
    for slot, client in enumerate(one_client_per_slot(connect, cluster)):
        answer = whoami(client)
        assert answer["slot"] == slot
        assert answer["sid"] == client.get_sid()
        assert answer["remote_addr"] == client.source_ip
        assert client.call("echo", {"n": slot}, timeout=DELIVERY_TIMEOUT) == {"n": slot}
        # The Flask route answers on the worker the client's address belongs to.
        with bound_session(client.source_ip) as http:
            reply = http.get(f"{cluster.url}/hello", timeout=DELIVERY_TIMEOUT)
        assert reply.status_code == 200
        assert reply.json() == {"slot": slot, "remote_addr": client.source_ip}


def test_flask_socketio_emits_cross_workers(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient]
) -> None:
    cluster = start_cluster(app=APP, workers=WORKERS)
    first, second = one_client_per_slot(connect, cluster)
    for client in (first, second):
        client.record("news")
    token = uuid.uuid4().hex
    assert first.call("broadcast", token, timeout=DELIVERY_TIMEOUT) is True
    assert first.next_event("news", DELIVERY_TIMEOUT) == token
    assert second.next_event("news", DELIVERY_TIMEOUT) == token
    # A room joined on worker 1 hears an emit made on worker 0 (join_room / emit(to=room)).
    room = f"room-{uuid.uuid4().hex}"
    assert second.call("join", room, timeout=DELIVERY_TIMEOUT)["slot"] == 1
    assert first.call("to_room", {"room": room, "data": token + "-room"},
                      timeout=DELIVERY_TIMEOUT) is True
    assert second.next_event("news", DELIVERY_TIMEOUT) == token + "-room"
