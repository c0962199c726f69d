"""A real nginx (started here, on loopback) in front of two sioctl nodes of two workers each,
joined by one Redis.

Clients come from 16 addresses, 127.0.0.2 … 127.0.0.17, and all reach nginx; nginx picks the
node with ``hash $remote_addr consistent`` and tells the node who the client is, either in
X-Forwarded-For (HTTP proxy; nodes run ``--forwarded-allow-ips 127.0.0.1``) or in a PROXY
protocol header (stream proxy; nodes run ``--proxy-protocol``). The node's master then picks
the worker from that address, so sessions spread over all four workers.
"""

from __future__ import annotations

import contextlib
import signal
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.clients import (
    BoundClient,
    expected_slot,
    make_client,
    try_whoami,
    wait_for_upgrade,
    wait_until,
    whoami,
)
from tests.support.nginx import (
    NODE_ARGS,
    SOURCE_IPS,
    TRANSPORTS,
    Front,
    NginxServer,
    connect_all,
    stream_module,
)

WORKERS = 2
DELIVERY_TIMEOUT = 10.0
# A stopped node's clients find the other node within this long (they retry every second).
FAILOVER_TIMEOUT = 40.0


@pytest.fixture
def front(
    request: pytest.FixtureRequest,
    start_cluster: Callable[..., Any],
    start_nginx: Callable[..., NginxServer],
) -> Front:
    """nginx (kind from the test's ``kind`` parameter) in front of two 2-worker nodes sharing
    the session's Redis."""
    kind = request.param
    if kind == "stream":
        stream_module()  # skip before starting anything
    nodes = [
        start_cluster(workers=WORKERS, extra_args=[*NODE_ARGS[kind], "--graceful-timeout", "2"])
        for _ in range(2)
    ]
    return Front(nodes, start_nginx(kind, nodes))


KINDS = pytest.mark.parametrize("front", ["http", "stream"], indirect=True)


@KINDS
def test_sessions_through_nginx_spread_over_every_worker(
    front: Front, connect: Callable[..., BoundClient]
) -> None:
    clients = connect_all(connect, front.url)
    places = {}
    for client in clients:
        # Several requests per session: each long-poll is a new connection through nginx,
        # and every one of them must reach the worker that holds the session.
        seen = {front.where(client) for _ in range(4)}
        assert len(seen) == 1, f"{client.source_ip} was served by several workers: {seen}"
        places[client.source_ip] = seen.pop()
        if "websocket" in client.default_transports:
            assert client.transport() == "websocket"
    every = {(n, s) for n in range(2) for s in range(WORKERS)}
    # nginx's consistent hash places an address on a node by the nodes' addresses, whose ports
    # change every run: now and then one node gets none of a slot's 8 addresses. More
    # addresses of the slot that lacks a node, until every worker has one (at most 40 more).
    for ip in (f"127.0.0.{i}" for i in range(80, 200)):
        if set(places.values()) == every or len(places) >= len(clients) + 40:
            break
        if expected_slot(ip, WORKERS) in {s for _n, s in every - set(places.values())}:
            extra = connect(front.url, ip, ["polling"])
            places[ip] = front.where(extra)
            assert {front.where(extra) for _ in range(3)} == {places[ip]}, ip
    used = set(places.values())
    assert len(used) > 1, f"every client landed on one worker: {places}"
    assert used == every, places
    # The node's master chose the worker from the real client address.
    for ip, (_node, slot) in places.items():
        assert slot == expected_slot(ip, WORKERS), (ip, places)
    front.nodes[0].wait_for(lambda _s: front.slots_with_sessions() == used, timeout=10,
                            what=f"status showing sessions on {sorted(used)}")


@pytest.mark.parametrize("front", ["stream"], indirect=True)
def test_proxy_protocol_gives_workers_the_client_address(
    front: Front, connect: Callable[..., BoundClient]
) -> None:
    for client in connect_all(connect, front.url, SOURCE_IPS[:6]):
        assert whoami(client)["remote_addr"] == client.source_ip


@KINDS
def test_broadcasts_and_room_emits_cross_nodes(
    front: Front, connect: Callable[..., BoundClient]
) -> None:
    clients = connect_all(connect, front.url)
    by_node: dict[int, list[BoundClient]] = {0: [], 1: []}
    for client in clients:
        by_node[front.where(client)[0]].append(client)
    assert by_node[0] and by_node[1], "nginx sent every client to one node"
    sender, receiver = by_node[0][0], by_node[1][0]

    for client in clients:
        client.record("news")
    message = {"id": uuid.uuid4().hex}
    assert sender.call("broadcast", message, timeout=DELIVERY_TIMEOUT) is True
    for client in clients:
        assert client.next_event("news", DELIVERY_TIMEOUT) == message, client.source_ip

    room = f"room-{uuid.uuid4().hex}"
    receiver.call("join", room, timeout=DELIVERY_TIMEOUT)
    in_room = {"id": uuid.uuid4().hex}
    sender.call("to_room", {"room": room, "data": in_room}, timeout=DELIVERY_TIMEOUT)
    assert receiver.next_event("news", DELIVERY_TIMEOUT) == in_room
    # The sender is not in the room: the next message it gets is a later broadcast.
    after = {"id": uuid.uuid4().hex}
    sender.call("broadcast", after, timeout=DELIVERY_TIMEOUT)
    assert sender.next_event("news", DELIVERY_TIMEOUT) == after


@KINDS
def test_clients_of_a_stopped_node_move_to_the_other(
    front: Front, connect: Callable[..., BoundClient]
) -> None:
    clients = connect_all(connect, front.url)
    on_stopped = [c for c in clients if front.where(c)[0] == 0]
    on_other = [c for c in clients if front.where(c)[0] == 1]
    assert on_stopped and on_other, "nginx sent every client to one node"

    front.nodes[0].signal(signal.SIGTERM)
    assert front.nodes[0].wait_exit(30) is not None, "the stopped node did not exit"

    def moved(client: BoundClient) -> Callable[[], bool]:
        def check() -> bool:
            answer = try_whoami(client)
            return answer is not None and answer["pid"] in front.workers and (
                front.workers[answer["pid"]][0] == 1)
        return check

    for client in on_stopped:
        wait_until(moved(client), FAILOVER_TIMEOUT,
                   what=f"{client.source_ip} to reconnect to the other node")
        assert client.call("echo", "still here", timeout=DELIVERY_TIMEOUT) == "still here"
    # Messages reach both the moved clients and those that were there all along.
    everyone = on_stopped + on_other
    for client in everyone:
        client.record("news")
    message = {"id": uuid.uuid4().hex}
    on_stopped[0].call("broadcast", message, timeout=DELIVERY_TIMEOUT)
    for client in everyone:
        assert client.next_event("news", DELIVERY_TIMEOUT) == message, client.source_ip


def test_spoofed_forwarded_for_from_an_untrusted_address_is_ignored(
    start_cluster: Callable[..., Any],
) -> None:
    node = start_cluster(workers=WORKERS, extra_args=NODE_ARGS["http"])
    untrusted = "127.0.0.9"
    # An address served by the other slot: if the header counted, the slot would change.
    spoofed = next(ip for ip in SOURCE_IPS
                   if expected_slot(ip, WORKERS) != expected_slot(untrusted, WORKERS))
    headers = {"X-Forwarded-For": spoofed, "X-Real-IP": spoofed, "Forwarded": f"for={spoofed}"}
    made: list[BoundClient] = []

    def connect_with(ip: str, transports: tuple[str, ...], sent: dict[str, str]) -> BoundClient:
        client = make_client(ip, transports)
        made.append(client)
        client.connect(node.url, headers=sent)
        if "websocket" in transports:
            wait_for_upgrade(client)
        return client

    try:
        for transports in TRANSPORTS:
            client = connect_with(untrusted, transports, headers)
            assert whoami(client)["slot"] == expected_slot(untrusted, WORKERS), transports
        # From the trusted address the same header does decide the slot.
        trusted = connect_with("127.0.0.1", ("polling", "websocket"),
                               {"X-Forwarded-For": spoofed})
        assert whoami(trusted)["slot"] == expected_slot(spoofed, WORKERS)
    finally:
        for client in made:
            with contextlib.suppress(Exception):
                client.shutdown()
