"""Sticky sessions through the master, and emits that cross workers through Redis.

Clients come from 127.0.0.2 … 127.0.0.9, which spread over both slots of a 2-worker cluster.
"""

from __future__ import annotations

import itertools
import queue
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.support.clients import (
    SOURCE_IPS,
    BoundClient,
    expected_slot,
    ips_for_slot,
    wait_for_upgrade,
    whoami,
)
from tests.support.cluster import ENGINES

TRANSPORTS = {
    "polling": ("polling",),
    "websocket": ("websocket",),
    "upgrade": ("polling", "websocket"),
}
WORKERS = 2
# How long a client may wait for a message that should arrive.
DELIVERY_TIMEOUT = 10.0


def connect_ready(
    connect: Callable[..., BoundClient], cluster: Any, ip: str, transports: tuple[str, ...]
) -> BoundClient:
    """A connected client that has finished upgrading when it was allowed to."""
    client = connect(cluster, ip, transports)
    if "websocket" in transports:
        wait_for_upgrade(client)
    return client


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_every_session_stays_on_its_slot(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient], transport: str
) -> None:
    cluster = start_cluster(workers=WORKERS)
    pids = cluster.worker_pids()
    transports = TRANSPORTS[transport]
    served_slots = set()
    for ip in SOURCE_IPS:
        client = connect_ready(connect, cluster, ip, transports)
        answers = [whoami(client) for _ in range(5)]
        first = answers[0]
        assert all(a["slot"] == first["slot"] and a["pid"] == first["pid"] for a in answers), (
            f"{ip} over {transport} was served by several workers: {answers}"
        )
        assert first["slot"] == expected_slot(ip, WORKERS), ip
        assert first["pid"] == pids[first["slot"]], (ip, first, pids)
        assert first["remote_addr"] == ip
        assert first["sid"] == client.get_sid()
        # An upgrade only succeeds on the worker that holds the session.
        assert client.transport() == transports[-1]
        served_slots.add(first["slot"])
    assert served_slots == set(range(WORKERS))


@pytest.mark.parametrize(
    "app",
    ["tests.apps.chat:sio", "tests.apps.wrapped:app", "tests.apps.wrapped:application",
     # The asyncio engine, picked by the app: a bare AsyncServer, and an ASGIApp mounting
     # one beside another ASGI app.
     "tests.apps.asyncchat:sio", "tests.apps.asyncchat:app"],
)
def test_app_forms(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient], app: str
) -> None:
    cluster = start_cluster(app=app, workers=WORKERS)
    clients = [
        connect_ready(connect, cluster, ips_for_slot(slot, WORKERS)[0], TRANSPORTS["upgrade"])
        for slot in range(WORKERS)
    ]
    for slot, client in enumerate(clients):
        answer = whoami(client)
        assert answer["slot"] == slot
        assert answer["remote_addr"] == client.source_ip
        assert client.call("echo", {"n": slot}, timeout=DELIVERY_TIMEOUT) == {"n": slot}
    for client in clients:
        client.record("news")
    token = uuid.uuid4().hex
    assert clients[0].call("broadcast", token, timeout=DELIVERY_TIMEOUT) is True
    for client in clients:
        assert client.next_event("news", DELIVERY_TIMEOUT) == token
    if app in ("tests.apps.wrapped:application", "tests.apps.asyncchat:app"):
        # The wrapping WSGI (or ASGI) app still answers its own routes.
        reply = requests.get(f"{cluster.url}/health", timeout=DELIVERY_TIMEOUT)
        assert reply.status_code == 200
        assert reply.text == "ok"


def connect_everyone(connect: Callable[..., BoundClient], cluster: Any) -> dict[str, BoundClient]:
    """One client per source address, transports taken in turn, each recording 'news'."""
    clients = {}
    for ip, transport in zip(SOURCE_IPS, itertools.cycle(TRANSPORTS), strict=False):
        client = connect_ready(connect, cluster, ip, TRANSPORTS[transport])
        # In arrival order: the room test reads the order of two messages.
        client.handle_in_order()
        client.record("news")
        clients[ip] = client
    return clients


@pytest.mark.parametrize("engine", ENGINES)
def test_broadcast_reaches_every_client_on_every_worker(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient]
) -> None:
    cluster = start_cluster(workers=WORKERS)
    clients = connect_everyone(connect, cluster)
    for slot in range(WORKERS):
        sender = clients[ips_for_slot(slot, WORKERS)[0]]
        token = f"from-slot-{slot}-{uuid.uuid4().hex}"
        assert sender.call("broadcast", token, timeout=DELIVERY_TIMEOUT) is True
        for ip, client in clients.items():
            try:
                received = client.next_event("news", DELIVERY_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"{ip} (slot {expected_slot(ip, WORKERS)}) missed {token}")
            assert received == token, ip


@pytest.mark.parametrize("engine", ENGINES)
def test_room_emit_reaches_exactly_the_members(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient]
) -> None:
    cluster = start_cluster(workers=WORKERS)
    clients = connect_everyone(connect, cluster)
    # Two members on each slot; everybody else stays out of the room.
    members = [ip for slot in range(WORKERS) for ip in ips_for_slot(slot, WORKERS)[:2]]
    outsiders = [ip for ip in clients if ip not in members]
    assert outsiders
    for ip in members:
        assert clients[ip].call("join", "blue", timeout=DELIVERY_TIMEOUT)["room"] == "blue"

    sender = clients[outsiders[0]]  # a non-member may emit to a room
    secret = f"room-{uuid.uuid4().hex}"
    marker = f"everyone-{uuid.uuid4().hex}"
    assert sender.call("to_room", {"room": "blue", "data": secret}, timeout=DELIVERY_TIMEOUT)
    # Emits from one sender reach each client in order, so an outsider's first message being
    # the broadcast that followed proves the room message never came to it.
    assert sender.call("broadcast", marker, timeout=DELIVERY_TIMEOUT) is True

    for ip in members:
        assert clients[ip].next_event("news", DELIVERY_TIMEOUT) == secret, ip
        assert clients[ip].next_event("news", DELIVERY_TIMEOUT) == marker, ip
    for ip in outsiders:
        assert clients[ip].next_event("news", DELIVERY_TIMEOUT) == marker, (
            f"{ip} is not in the room but received its message"
        )
    for ip, client in clients.items():
        with pytest.raises(queue.Empty):
            client.received["news"].get_nowait()
        assert client.disconnects == 0, ip
