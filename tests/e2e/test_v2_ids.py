"""A Socket.IO v2 client's ``socket.id`` is the id the server knows it by (issue 16): the
Engine.IO sid on ``/`` and ``/ns#<eio sid>`` on another namespace, as a Socket.IO 2 server named
sockets, wherever ids are seen (handlers, rooms, the gateway's registry), unless the app's
``io.generate_id`` names them. Real socket.io-client@2 against 2-worker clusters, and the async
shell in process.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import socketio

from sioctl.worker import protocol
from sioctl.worker.gateway.wire import (
    EXCHANGE,
    REQUEST_MESSAGE,
    RESPONSE_MESSAGE,
    SAVE_ID,
    SEND_TO_OTHERS,
    signed_request,
)
from sioctl.worker.protocol.core.sio_v4 import v2_socket_id
from tests.support.asgi_client import Client, run, v3_packets
from tests.support.clients import ips_for_slot, make_client
from tests.support.cluster import Cluster, module_cluster
from tests.support.gateway import SIG_APP, SIG_KEY, GwClient, assert_success
from tests.support.node import NodeClient
from tests.support.paths import APPS_DIR, JS_DIR

WORKERS = 2
APPS = APPS_DIR
_ADDRESSES = [f"127.0.0.{i}" for i in range(170, 220)]
SLOT0 = ips_for_slot(0, WORKERS, _ADDRESSES)
SLOT1 = ips_for_slot(1, WORKERS, _ADDRESSES)


def test_the_rule() -> None:
    assert v2_socket_id("AbC123", "/") == "AbC123"
    assert v2_socket_id("AbC123", "/chat") == "/chat#AbC123"


def test_the_async_shell_names_v2_sockets_the_same() -> None:
    async def scenario() -> None:
        sio = socketio.AsyncServer(async_mode="asgi")
        seen: dict[str, str] = {}

        @sio.on("connect", namespace="/chat")
        async def chat_connect(sid: str, environ: Any, auth: Any = None) -> None:
            seen["/chat"] = sid

        @sio.event
        async def connect(sid: str, environ: Any, auth: Any = None) -> None:
            seen["/"] = sid

        protocol.install(sio, allow_eio3=True)
        app = socketio.ASGIApp(sio, socketio_path="socket.io")
        client = Client(app)
        status, body = await client.request("GET", "EIO=3&transport=polling")
        assert status == 200
        packets = v3_packets(body)
        eio_sid = json.loads(packets[0][1:])["sid"]
        query = f"EIO=3&transport=polling&sid={eio_sid}"
        while "40" not in packets:  # bounded by run()'s timeout
            packets = v3_packets((await client.request("GET", query))[1])
        assert seen["/"] == eio_sid == sio.manager.sid_from_eio_sid(eio_sid, "/")
        assert await client.request("POST", query, b"8:40/chat,") == (200, b"ok")
        assert v3_packets((await client.request("GET", query))[1]) == ["40/chat,"]
        assert seen["/chat"] == f"/chat#{eio_sid}"
        # A v4 (EIO=4) session keeps python-socketio's random ids.
        v4 = Client(app)
        opened = await v4.open()
        assert await v4.post(b"40") == (200, b"ok")
        await v4.get()
        assert sio.manager.sid_from_eio_sid(opened["sid"], "/") not in (None, opened["sid"])

    run(scenario())


def _cluster(app: str, redis_url: str, factory: pytest.TempPathFactory, *args: str,
             env: dict[str, str] | None = None) -> Iterator[Cluster]:
    yield from module_cluster(app, WORKERS, redis_url, factory.mktemp("v2ids"), *args, env=env)


@pytest.fixture(scope="module")
def chat(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _cluster("tests.apps.chat:sio", redis_url, tmp_path_factory, "--allow-eio3")


@pytest.fixture(scope="module")
def gwapp(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _cluster(str(APPS / "gwapp"), redis_url, tmp_path_factory, "--allow-eio3",
                        env={"GWAPP_CENTRAL_KEY": "central-key"})


@pytest.fixture(autouse=True)
def node_ready(request: pytest.FixtureRequest) -> None:
    if "node" not in request.fixturenames:
        return
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    assert (JS_DIR / "node_modules" / "socket.io-client-v2").is_dir()


@pytest.fixture
def node() -> Iterator[Callable[..., NodeClient]]:
    made: list[NodeClient] = []

    def start(spec: dict[str, Any]) -> NodeClient:
        made.append(NodeClient({"timeout": 15000, **spec}, script="client_v2.js"))
        return made[-1]

    yield start
    for client in made:
        client.close()


def test_handlers_and_rooms_see_the_id_the_v2_client_shows(chat: Cluster, node: Any) -> None:
    v2 = node({
        "url": chat.url, "localAddress": SLOT1[0], "namespaces": [{"name": "/chat"}],
        "actions": [{"op": "emit", "event": "whoami"},
                    {"op": "emit", "event": "whoami", "namespace": "/chat"},
                    {"op": "ready"},
                    {"op": "wait", "event": "news"}],
    })
    connected = v2.expect("connect")
    eio_sid = connected["engine_id"]
    assert connected["id"] == eio_sid
    assert connected["namespaces"]["/chat"] == f"/chat#{eio_sid}"
    assert v2.expect("emit")["ack"]["sid"] == connected["id"]
    assert v2.expect("emit")["ack"] == {"sid": f"/chat#{eio_sid}", "slot": 1}
    v2.expect("ready")
    # The socket's own room is that id, on every worker: a v4 client on worker 0 emits to it.
    other = make_client(SLOT0[0], reconnection=False)
    try:
        other.connect(chat.url)
        assert other.call("to_room", {"room": connected["id"], "data": "by id"}, timeout=10)
    finally:
        other.shutdown()
    assert v2.expect("wait")["args"] == ["by id"]
    v2.expect("done")


def test_a_gateway_flow_addresses_a_v2_client_by_its_socket_id(gwapp: Cluster, node: Any
                                                              ) -> None:
    python = GwClient(SLOT0[1])
    try:
        python.connect(gwapp.url)
        v2 = node({
            "url": gwapp.url, "localAddress": SLOT1[1],
            "actions": [
                {"op": "wait", "event": RESPONSE_MESSAGE},
                {"op": "emit", "event": REQUEST_MESSAGE, "args": [signed_request(
                    SEND_TO_OTHERS, SIG_APP, SIG_KEY, payload="hi", target=python.sid)]},
                {"op": "ready"},
                {"op": "wait", "event": RESPONSE_MESSAGE},
            ],
        })
        socket_id = v2.expect("connect")["id"]
        [saved] = v2.expect("wait")["args"]
        assert saved["data"]["action"] == SAVE_ID
        assert saved["data"]["payload"]["socketId"] == socket_id
        assert_success(v2.expect("emit")["ack"], python.sid)
        got = python.expect(EXCHANGE)
        assert (got["meta"]["client"], got["data"]["payload"]) == (socket_id, "hi")
        v2.expect("ready")
        # What a v2 page passes around is its socket.id: the gateway reaches it by that.
        assert_success(python.request(SEND_TO_OTHERS, target=socket_id, payload="back"),
                       socket_id)
        [back] = v2.expect("wait")["args"]
        assert back["data"] == {"action": EXCHANGE, "payload": "back"}
        v2.expect("done")
    finally:
        python.sio.shutdown()


def test_an_apps_generate_id_still_names_v2_sockets(redis_url: str, node: Any,
                                                    tmp_path_factory: pytest.TempPathFactory
                                                    ) -> None:
    for egg in _cluster(str(APPS / "eggapp"), redis_url, tmp_path_factory):
        v2 = node({"url": egg.url, "localAddress": SLOT0[2],
                   "actions": [{"op": "emit", "event": "whoami"}]})
        connected = v2.expect("connect")
        server_id = v2.expect("emit")["ack"]["id"]
        assert server_id.startswith("egg-") and server_id != connected["id"]
        v2.expect("done")
