"""The broadcast write path (issue 19): room emits and broadcasts, encoded once per worker and
written straight to the websockets that can take them, still reach every kind of client exactly
once and in order — websocket and polling python clients, the official socket.io-client@4 and
@2 (Engine.IO 3) — with skip_sid honoured, binary attachments intact, and a client that stops
reading holding nobody up and losing nothing. 2 workers, both engines (``module_engine``).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from tests.support.clients import BoundClient, ips_for_slot, make_client, wait_for_upgrade
from tests.support.cluster import Cluster, app_on, module_cluster
from tests.support.node import NodeClient, require_node

WORKERS = 2
# Addresses of this module's own, one per client.
_ADDRESSES = [f"127.0.3.{i}" for i in range(10, 90)]
SLOT0 = ips_for_slot(0, WORKERS, _ADDRESSES)
SLOT1 = ips_for_slot(1, WORKERS, _ADDRESSES)
WAIT = 20.0


@pytest.fixture(scope="module")
def fanout(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
           module_engine: str) -> Iterator[Cluster]:
    """The fan-out app on 2 workers of the module's engine, serving EIO=3 clients too."""
    yield from module_cluster(app_on(module_engine, "tests.apps.fanout:sio"), WORKERS,
                              redis_url, tmp_path_factory.mktemp("fanout"), "--allow-eio3")


class Python:
    """A python-socketio client (``transports``) from ``ip`` whose 'seq' events are kept in
    arrival order."""

    def __init__(self, cluster: Cluster, ip: str, transports: list[str]) -> None:
        self.client: BoundClient = make_client(ip, transports)
        self.client.handle_in_order()
        self.seq = self.client.record("seq")
        self.client.connect(cluster.url)
        if transports == ["polling", "websocket"]:
            wait_for_upgrade(self.client)
        self.sid = self.client.call("whoami", timeout=10)["sid"]

    def join(self, room: str) -> int:
        slot: int = self.client.call("join", room, timeout=10)["slot"]
        return slot

    def take(self, count: int) -> list[Any]:
        return [self.client.next_event("seq", WAIT) for _ in range(count)]


def expected(n: int, direct: bool) -> list[tuple[int, bool]]:
    """The (number, direct) of the 'seq' events a client gets from a burst of ``n`` (the app's
    ``fanout_common.burst_plan``), with the targeted ones when it is in ``direct_to``."""
    order = []
    for i in range(n):
        order.append((i, False))
        if direct and i % 4 == 3:
            order.append((i, True))
    return order


def marks(events: list[Any]) -> list[tuple[int, bool]]:
    return [(event["i"], bool(event.get("direct"))) for event in events]


def node_client(cluster: Cluster, ip: str, n: int, transports: list[str],
                v2: bool = False) -> NodeClient:
    """An official client (@4, or @2 with ``v2``) on ``transports`` (upgraded when it may)
    that joins room "r" and then reports ``n`` 'seq' events, in the order they come. (The
    polling clients of these tests are node's: python-engineio's client refuses a polling
    response of more than 16 packets.)"""
    upgrade = [{"op": "upgrade"}] if "websocket" in transports else []
    return NodeClient({
        "url": cluster.url, "localAddress": ip, "timeout": 15000, "transports": transports,
        "actions": upgrade + [{"op": "emit", "event": "join", "args": ["r"]}, {"op": "ready"}]
        + [{"op": "wait", "event": "seq"}] * n,
    }, script="client_v2.js" if v2 else "client.js")


def ready(nodes: list[NodeClient]) -> None:
    """Wait until every node client has connected (and upgraded) and joined its room."""
    for node in nodes:
        node.expect("connect")
        if node.proc.args and "websocket" in json.loads(node.proc.args[-1])["transports"]:
            node.expect("upgrade")
        node.expect("emit")
        node.expect("ready")


def node_numbers(node: NodeClient, n: int) -> list[int]:
    """The numbers of the next ``n`` 'seq' events ``node`` reports."""
    return [node.expect("wait")["args"][0]["i"] for _ in range(n)]


def test_room_emits_reach_every_kind_of_client_once_in_order(fanout: Cluster) -> None:
    """60 room emits with a targeted emit to one of the clients after every fourth: each
    client of the room, on either worker and whatever its transport or protocol (websocket,
    polling, upgraded; Engine.IO 4 or 3), gets each once, in the order they were made."""
    require_node()
    n = 60
    sender = Python(fanout, SLOT0[0], ["websocket"])
    local = Python(fanout, SLOT0[1], ["websocket"])
    remote = Python(fanout, SLOT1[0], ["polling", "websocket"])
    assert {sender.join("r"), local.join("r")} == {0}
    assert remote.join("r") == 1
    nodes = [node_client(fanout, SLOT0[2], n, ["polling"]),
             node_client(fanout, SLOT1[1], n, ["websocket"]),
             node_client(fanout, SLOT0[3], n, ["polling", "websocket"], v2=True),
             node_client(fanout, SLOT1[2], n, ["polling"], v2=True)]
    try:
        ready(nodes)
        count = sender.client.call("burst", {"room": "r", "n": n, "direct_to": [remote.sid]},
                                   timeout=10)
        assert count == n + n // 4
        for client, direct in ((sender, False), (local, False), (remote, True)):
            assert marks(client.take(len(expected(n, direct)))) == expected(n, direct)
        for node in nodes:
            assert node_numbers(node, n) == list(range(n))
    finally:
        for node in nodes:
            node.close()
        for client in (sender, local, remote):
            client.client.disconnect()


def test_skip_sid_and_binary_attachments(fanout: Cluster) -> None:
    """Broadcasts that skip their sender reach everyone else and not the sender; binary
    attachments arrive intact, in order, on websocket and long-polling clients alike (a
    polling GET used to fail with a 500 when a websocket recipient of the same emit had
    encoded the attachment first)."""
    require_node()
    n = 20
    sender = Python(fanout, SLOT0[4], ["websocket"])
    others = [Python(fanout, SLOT0[5], ["websocket"]), Python(fanout, SLOT1[3], ["websocket"])]
    nodes = [node_client(fanout, SLOT0[6], n, ["polling"]),
             node_client(fanout, SLOT1[4], n, ["websocket"])]
    try:
        ready(nodes)
        sender.client.call("burst", {"n": n, "skip_self": True, "binary": True}, timeout=10)
        for client in others:
            events = client.take(n)
            assert [e["i"] for e in events] == list(range(n))
            assert [e["bin"] for e in events] == [bytes([i, 1, 2]) for i in range(n)]
        for node in nodes:
            waited = [node.expect("wait")["args"][0] for _ in range(n)]
            assert [e["i"] for e in waited] == list(range(n))
            assert [e["bin"] for e in waited] == [
                {"type": "Buffer", "data": [i, 1, 2]} for i in range(n)]
        # The sender's first 'seq' event is the next burst's: nothing of the skipped one.
        sender.client.call("burst", {"n": 1, "room": sender.sid}, timeout=10)
        assert marks(sender.take(1)) == [(0, False)]
    finally:
        for node in nodes:
            node.close()
        for client in [sender, *others]:
            client.client.disconnect()


class Stalled:
    """A websocket client from ``ip`` that joins ``room`` and then reads nothing until told
    (a small receive buffer, so the server's writes to it stop being taken at once)."""

    def __init__(self, cluster: Cluster, ip: str, room: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(WAIT)
        sock.bind((ip, 0))
        sock.connect(("127.0.0.1", cluster.port))
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{cluster.port}/socket.io/?EIO=4&transport=websocket", socket=sock,
            timeout=WAIT)
        assert self.ws.recv().startswith("0")
        self.ws.send("40")
        assert self.ws.recv().startswith("40")
        self.ws.send('420["join","' + room + '"]')
        assert self.ws.recv().startswith("430")

    def read_seq(self, count: int) -> list[Any]:
        """The next ``count`` 'seq' events (answering pings on the way)."""
        events: list[Any] = []
        while len(events) < count:
            frame = self.ws.recv()
            if frame == "2":
                self.ws.send("3")
            elif frame.startswith('42["seq",'):
                events.append(json.loads(frame[2:])[1])
        return events


def test_a_client_that_does_not_read_holds_nobody_up(fanout: Cluster) -> None:
    """200 room emits of 16 KiB: a client that reads nothing meanwhile (its socket full, the
    rest queued for it) does not hold up the other members of the room on its worker or the
    other, and once it reads it gets every one, in order."""
    n, size = 200, 16384
    stalled = Stalled(fanout, SLOT0[7], "big")
    sender = Python(fanout, SLOT0[8], ["websocket"])
    readers = [Python(fanout, SLOT0[9], ["websocket"]), Python(fanout, SLOT1[3], ["websocket"])]
    try:
        for reader in readers:
            reader.join("big")
        sender.client.call("burst", {"room": "big", "n": n, "size": size}, timeout=WAIT)
        for reader in readers:
            events = reader.take(n)
            assert [e["i"] for e in events] == list(range(n))
            assert all(len(e["pad"]) == size for e in events)
        events = stalled.read_seq(n)
        assert [e["i"] for e in events] == list(range(n))
        assert all(e["pad"] == "x" * size for e in events)
    finally:
        stalled.ws.close()
        for client in [sender, *readers]:
            client.client.disconnect()
