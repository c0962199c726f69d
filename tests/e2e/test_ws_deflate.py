"""``--ws-per-message-deflate`` on both engines (1 worker): the handshake accepts a client's
permessage-deflate offer only when the option is on; off, a client that offers it (every
browser) gets a plain websocket that works; on, a compressed websocket works for echo, binary
attachments and broadcasts (whose frames the worker otherwise encodes once and writes straight
to every plain socket: a compressed socket must get its own, compressed, frames). The official
socket.io-client@4 and @2 (which offer compression, as browsers do) are the browser-like check.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clients import ips_for_slot
from tests.support.cluster import Cluster, app_on, module_cluster
from tests.support.deflate_ws import BINARY, TEXT, DeflateSocket, SioDeflateClient
from tests.support.node import NodeClient, require_node

ADDRESSES = [f"127.0.7.{i}" for i in range(10, 40)]
# Compressible, and over every threshold (engine.io-client's 1 KiB, for its own frames).
PAYLOAD = "sioctl " * 600
SETTINGS = ("on", "off")


@pytest.fixture(scope="module")
def deflate_on(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
               module_engine: str) -> Iterator[Cluster]:
    yield from module_cluster(app_on(module_engine, "tests.apps.chat:sio"), 1, None,
                              tmp_path_factory.mktemp("deflate-on"), "--ws-per-message-deflate",
                              "--allow-eio3")


@pytest.fixture(scope="module")
def deflate_off(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
                module_engine: str) -> Iterator[Cluster]:
    # The default: no flag.
    yield from module_cluster(app_on(module_engine, "tests.apps.chat:sio"), 1, None,
                              tmp_path_factory.mktemp("deflate-off"), "--allow-eio3")


@pytest.fixture(scope="module")
def deflate_on_two(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
                   module_engine: str) -> Iterator[Cluster]:
    """2 workers joined through Redis, compression on: broadcasts heard from Redis are written
    a burst at a time (worker/messaging/bursts.py), another path to the sockets."""
    yield from module_cluster(app_on(module_engine, "tests.apps.chat:sio"), 2, redis_url,
                              tmp_path_factory.mktemp("deflate-two"), "--ws-per-message-deflate")


@pytest.fixture(params=SETTINGS)
def setting(request: pytest.FixtureRequest, deflate_on: Cluster,
            deflate_off: Cluster) -> tuple[str, Cluster]:
    """Each setting with its cluster: ("on", cluster) and ("off", cluster)."""
    name = str(request.param)
    return name, deflate_on if name == "on" else deflate_off


def data_frames(client: SioDeflateClient) -> list[bool]:
    """Whether each text or binary frame the client received came compressed."""
    return [f.compressed for f in client.frames if f.opcode in (TEXT, BINARY)]


@pytest.mark.parametrize("offer", [True, False], ids=["offered", "not-offered"])
def test_the_handshake_accepts_deflate_only_when_on_and_offered(
        setting: tuple[str, Cluster], offer: bool) -> None:
    name, cluster = setting
    ws = DeflateSocket(cluster.port, ADDRESSES[0], offer)
    try:
        if name == "on" and offer:
            assert ws.extensions is not None and \
                ws.extensions.startswith("permessage-deflate"), ws.extensions
        else:
            assert ws.extensions is None
        # Either way the websocket serves: the OPEN packet.
        assert ws.frame().text.startswith("0{")
    finally:
        ws.close()


def test_echo_and_binary_on_a_client_offering_deflate(setting: tuple[str, Cluster]) -> None:
    """A client that offers compression and compresses what it sends (as a browser does):
    echo of text and binary attachments come back whole, every frame compressed when the
    option is on and none when it is off."""
    name, cluster = setting
    client = SioDeflateClient(cluster.port, ADDRESSES[1], offer=True)
    try:
        assert client.ws.compressing == (name == "on")
        for i in range(5):
            assert client.call("echo", {"i": i, "text": PAYLOAD}) == {"i": i, "text": PAYLOAD}
            blob = bytes(range(256)) * (8 + i)
            assert client.call_binary("echo", blob) == blob
        flags = data_frames(client)
        assert flags and set(flags) == {name == "on"}, flags
    finally:
        client.close()


def test_broadcasts_reach_compressed_and_plain_sockets_alike(
        setting: tuple[str, Cluster]) -> None:
    """Two clients offering compression and one not, on one worker: every broadcast (text and
    binary) reaches each, in order; on a compressed websocket every frame is compressed (no
    shared plain frame written into it), on a plain one none is."""
    name, cluster = setting
    offering = [SioDeflateClient(cluster.port, ADDRESSES[2 + i], offer=True) for i in range(2)]
    plain = SioDeflateClient(cluster.port, ADDRESSES[4], offer=False)
    clients = [*offering, plain]
    try:
        n = 12
        for i in range(n):
            assert offering[0].call("broadcast", {"i": i, "text": PAYLOAD}) is True
        blob = b"\x00\x01binary" * 300
        assert offering[1].call_binary_event("broadcast", blob) is True
        for client in clients:
            got = [client.event("news")[0] for _ in range(n)]
            assert got == [{"i": i, "text": PAYLOAD} for i in range(n)]
            assert client.binary_event("news") == blob
        for client in offering:
            flags = data_frames(client)
            assert set(flags) == {name == "on"}, flags
        assert set(data_frames(plain)) == {False}
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("v2", [False, True], ids=["v4", "v2"])
def test_the_official_client_offering_deflate(setting: tuple[str, Cluster], v2: bool) -> None:
    """socket.io-client@4 and @2 (Engine.IO 3) on node offer permessage-deflate, as a browser
    does: they get it only when the option is on, and echo and broadcast work either way."""
    require_node("socket.io-client-v2" if v2 else "socket.io-client")
    name, cluster = setting
    node = NodeClient({
        "url": cluster.url, "localAddress": ADDRESSES[6 if v2 else 5], "timeout": 15000,
        "transports": ["websocket"],
        "actions": [{"op": "state"},
                    {"op": "emit", "event": "echo", "args": [PAYLOAD]},
                    {"op": "emit", "event": "broadcast", "args": [PAYLOAD]},
                    {"op": "wait", "event": "news"}],
    }, script="client_v2.js" if v2 else "client.js")
    try:
        node.expect("connect")
        state = node.expect("state")
        assert state["transport"] == "websocket"
        assert ("permessage-deflate" in (state["extensions"] or "")) == (name == "on"), state
        assert node.expect("emit")["ack"] == PAYLOAD
        assert node.expect("emit")["ack"] is True
        assert node.expect("wait")["args"] == [PAYLOAD]
        node.expect("done")
    finally:
        node.close()


def test_broadcasts_from_another_worker_reach_compressed_sockets(deflate_on_two: Cluster
                                                                 ) -> None:
    """With compression on and 2 workers, broadcasts made on one worker reach, through Redis,
    two compressing clients and a plain one on the other worker, in order, every frame of the
    compressing ones compressed."""
    sender = SioDeflateClient(deflate_on_two.port, ips_for_slot(0, 2, ADDRESSES)[0], offer=True)
    far = ips_for_slot(1, 2, ADDRESSES)
    receivers = [SioDeflateClient(deflate_on_two.port, far[0], offer=True),
                 SioDeflateClient(deflate_on_two.port, far[1], offer=True),
                 SioDeflateClient(deflate_on_two.port, far[2], offer=False)]
    clients = [sender, *receivers]
    try:
        assert sender.call("whoami", None)["slot"] == 0
        assert {r.call("whoami", None)["slot"] for r in receivers} == {1}
        n = 30
        for i in range(n):
            assert sender.call("broadcast", {"i": i, "text": PAYLOAD}) is True
        for client in clients:
            got = [client.event("news")[0] for _ in range(n)]
            assert got == [{"i": i, "text": PAYLOAD} for i in range(n)]
        for client in clients:
            assert set(data_frames(client)) == {client.ws.compressing}, data_frames(client)
        assert [r.ws.compressing for r in receivers] == [True, True, False]
    finally:
        for client in clients:
            client.close()


def test_an_upgrade_to_a_websocket_offering_deflate(setting: tuple[str, Cluster]) -> None:
    """socket.io-client@4 opening with polling and upgrading (the browser's default): the
    websocket it upgrades to is compressed only when the option is on, and events sent
    before and after the upgrade all arrive."""
    require_node()
    name, cluster = setting
    node = NodeClient({
        "url": cluster.url, "localAddress": ADDRESSES[7], "timeout": 15000,
        "transports": ["polling", "websocket"],
        "actions": [{"op": "emit", "event": "echo", "args": [PAYLOAD]},
                    {"op": "upgrade"}, {"op": "state"},
                    {"op": "emit", "event": "broadcast", "args": [PAYLOAD]},
                    {"op": "wait", "event": "news"},
                    {"op": "emit", "event": "echo", "args": [PAYLOAD]}],
    })
    try:
        assert node.expect("connect")["opened_with"] == "polling"
        assert node.expect("emit")["ack"] == PAYLOAD
        node.expect("upgrade")
        state = node.expect("state")
        assert state["transport"] == "websocket"
        assert ("permessage-deflate" in (state["extensions"] or "")) == (name == "on"), state
        assert node.expect("emit")["ack"] is True
        assert node.expect("wait")["args"] == [PAYLOAD]
        assert node.expect("emit")["ack"] == PAYLOAD
        node.expect("done")
    finally:
        node.close()
