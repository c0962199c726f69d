"""An app directory written exactly the egg-socket.io way (tests/apps/eggapp: camelCase keys,
engine.io's milliseconds, socketConfig, generateId, wsEngine) served unchanged by
``sioctl start --sticky`` with 2 workers, to python-socketio (v4) clients, socket.io-client@2
and plain HTTP: every egg name takes effect, and the CLI says once what it read it as.
"""

from __future__ import annotations

import json
import queue
import shutil
from collections.abc import Iterator

import pytest

from sioctl.worker.framework.config import load_config
from sioctl.worker.gateway.wire import RESPONSE_MESSAGE, SAVE_ID
from tests.support.clients import bound_session, ips_for_slot, make_client
from tests.support.cluster import Cluster, module_cluster
from tests.support.node import NodeClient
from tests.support.paths import APPS_DIR, JS_DIR

APP_DIR = APPS_DIR / "eggapp"
WORKERS = 2
_ADDRESSES = [f"127.0.0.{i}" for i in range(130, 170)]
SLOT0 = ips_for_slot(0, WORKERS, _ADDRESSES)
SLOT1 = ips_for_slot(1, WORKERS, _ADDRESSES)


@pytest.fixture(scope="module")
def egg(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # No --allow-eio3: the config's allowEIO3 turns it on, as in egg.
    yield from module_cluster(str(APP_DIR), WORKERS, redis_url, tmp_path_factory.mktemp("egg"))


@pytest.mark.parametrize("slot_ips", [SLOT0, SLOT1], ids=["slot0", "slot1"])
def test_middleware_controllers_and_generated_ids_on_both_workers(
    egg: Cluster, slot_ips: list[str]
) -> None:
    client = make_client(slot_ips[0], reconnection=False)
    res = client.record("res")
    gateway = client.record(RESPONSE_MESSAGE)
    try:
        client.connect(egg.url)
        # connectionMiddleware ['auth'] ran; generateId named the socket.
        assert res.get(timeout=10) == "connected!"
        me = client.call("whoami", timeout=10)
        assert me["slot"] == (0 if slot_ips is SLOT0 else 1)
        assert me["id"].startswith("egg-") and me["id"] == client.get_sid()
        assert res.get(timeout=10) == "packet received!"  # packetMiddleware ['filter']
        client.emit("chat", "hello")
        assert res.get(timeout=10) == "packet received!"
        assert res.get(timeout=10) == "Hi! I've got your message: hello"
        # socketConfig turned the gateway on: it greets the socket with its id.
        hello = gateway.get(timeout=10)
        assert hello["data"]["action"] == SAVE_ID
        assert hello["data"]["payload"]["socketId"] == me["id"]
    finally:
        client.shutdown()


def test_engine_io_options_in_milliseconds_reach_the_client(egg: Cluster) -> None:
    session = bound_session(SLOT1[1])
    reply = session.get(f"{egg.url}/socket.io/?EIO=4&transport=polling",
                        headers={"Origin": "https://h5.example"}, timeout=10)
    assert reply.status_code == 200, reply.text
    opened = json.loads(reply.text[1:])
    # pingInterval 25000 / pingTimeout 20000 / maxHttpBufferSize 1e6, as written in the config.
    assert (opened["pingInterval"], opened["pingTimeout"], opened["maxPayload"]) == (
        25000, 20000, 1_000_000)
    # cors: {origin: '*'} lets any page in.
    assert reply.headers["Access-Control-Allow-Origin"] == "https://h5.example"


def test_a_socket_io_v2_client_is_served(egg: Cluster) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    assert (JS_DIR / "node_modules" / "socket.io-client-v2").is_dir()
    client = NodeClient({"url": egg.url, "localAddress": SLOT0[2], "timeout": 15000,
                         "actions": [{"op": "emit", "event": "whoami"}, {"op": "state"}]},
                        script="client_v2.js")
    try:
        client.expect("connect")
        assert client.expect("emit")["ack"]["slot"] == 0
        assert client.expect("state")["ping_interval"] == 25000
        client.expect("done")
    finally:
        client.close()


def test_the_cli_said_once_what_each_egg_name_became(egg: Cluster) -> None:
    log = egg.log_text()
    notes = load_config(str(APP_DIR), "prod").notes
    assert notes
    for note in notes:
        assert log.count(f"sioctl: {note}") == 1, log


def test_the_chat_namespace_connects(egg: Cluster) -> None:
    client = make_client(SLOT1[3], reconnection=False)
    try:
        client.connect(egg.url, namespaces=["/chat"])
        said: queue.Queue[str] = queue.Queue()
        client.on("res", said.put, namespace="/chat")
        client.emit("chat", "there", namespace="/chat")
        assert said.get(timeout=10) == "Hi! I've got your message: there"
    finally:
        client.shutdown()
