"""The real socket.io-client@2 (Socket.IO v2, Engine.IO 3; tests/js/client_v2.js) next to the
v4 client (tests/js/client.js) and python clients, through ``sioctl start --sticky
--allow-eio3`` with 2 workers: every transport, acks, binary, namespaces and refusals, rooms and
broadcasts crossing both protocols, both workers and two nodes, the gateway's flow, and the
heartbeat.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sioctl.worker.gateway.wire import (
    EXCHANGE,
    RE_CONNECT_AND_UPDATES,
    RE_CONNECT_UPDATED,
    REQUEST_MESSAGE,
    RESPONSE_MESSAGE,
    SAVE_ID,
    SEND_TO_OTHERS,
    signed_request,
)
from tests.support.clients import BoundClient, ips_for_slot, make_client
from tests.support.cluster import Cluster, app_on, module_cluster
from tests.support.gateway import SIG_APP, SIG_KEY, GwClient, assert_success
from tests.support.node import NodeClient, require_node
from tests.support.paths import APPS_DIR

WORKERS = 2
APPS = APPS_DIR
# Addresses of their own, so that every client comes from a different one.
_ADDRESSES = [f"127.0.0.{i}" for i in range(60, 120)]
SLOT0 = ips_for_slot(0, WORKERS, _ADDRESSES)
SLOT1 = ips_for_slot(1, WORKERS, _ADDRESSES)


# The app directory of each engine: fwapp's middleware and controller are plain functions, so
# the asyncio side serves its twin written with async def (tests/e2e/test_framework.py).
APP_DIRS = {"eventlet": APPS / "fwapp", "asyncio": APPS / "fwapp_async"}


def _engine_args(engine: str) -> tuple[str, ...]:
    """The arguments that serve an app directory on ``engine``: a directory of plain
    functions is eventlet's under ``-k auto``, so the asyncio engine is named."""
    return ("-k", "asyncio") if engine == "asyncio" else ()


def _cluster(app: str, redis_url: str, factory: pytest.TempPathFactory, *args: str,
             env: dict[str, str] | None = None, engine: str = "") -> Iterator[Cluster]:
    """A module's cluster of ``app``; with ``engine``, checked to run that engine's workers."""
    for cluster in module_cluster(app, WORKERS, redis_url, factory.mktemp("jsv2"), *args,
                                  env=env):
        if engine:
            assert f"starting {WORKERS} {engine} workers" in cluster.log_text()
        yield cluster


@pytest.fixture(scope="module")
def chat(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
         module_engine: str) -> Iterator[Cluster]:
    yield from _cluster(app_on(module_engine, "tests.apps.chat:sio"),
                        redis_url, tmp_path_factory, "--allow-eio3")


@pytest.fixture(autouse=True)
def node_ready() -> None:
    require_node("socket.io-client-v2")


@pytest.fixture
def node() -> Iterator[Callable[..., NodeClient]]:
    """``node(spec, v2=True)``: client_v2.js (or client.js) running ``spec``, killed after."""
    made: list[NodeClient] = []

    def run(spec: dict[str, Any], v2: bool = True) -> NodeClient:
        made.append(NodeClient({"timeout": 15000, **spec},
                               script="client_v2.js" if v2 else "client.js"))
        return made[-1]

    yield run
    for client in made:
        client.close()


@pytest.fixture
def python_clients() -> Iterator[Callable[..., BoundClient]]:
    made: list[BoundClient] = []

    def connect(url: str, source_ip: str) -> BoundClient:
        client = make_client(source_ip, reconnection=False)
        made.append(client)
        client.connect(url)
        return client

    yield connect
    for client in made:
        client.shutdown()


def binary(data: bytes) -> dict[str, str]:
    """How the drivers write a Buffer in JSON."""
    return {"$binary": base64.b64encode(data).decode()}


def finish(client: NodeClient) -> None:
    client.expect("done")
    assert client.proc.wait(10) == 0


# --- Transports, acks, binary, broadcasts both ways ----------------------------------------------


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
def test_v2_and_v4_clients_side_by_side(
    chat: Cluster, node: Any, transports: list[str]
) -> None:
    """A v2 client on worker 1 and a v4 client on worker 0: each is served (acks, binary and
    text echoed intact), and a broadcast from either reaches the other."""
    v4 = node({
        "url": chat.url, "localAddress": SLOT0[0],
        "actions": [{"op": "wait", "event": "news"},
                    {"op": "emit", "event": "broadcast", "args": ["from v4"]},
                    {"op": "wait", "event": "news"}],
    }, v2=False)
    v4.expect("connect")
    payload = {"bytes": binary(bytes(range(256))), "text": "é€😀", "n": [1, 2.5, None]}
    actions: list[dict[str, Any]] = [
        {"op": "emit", "event": "whoami"},
        {"op": "emit", "event": "echo", "args": [payload]},
    ]
    if len(transports) == 2:
        actions.append({"op": "upgrade"})
    actions += [
        {"op": "emit", "event": "broadcast", "args": ["from v2"]},
        {"op": "wait", "event": "news"},
        {"op": "wait", "event": "news"},
        {"op": "emit", "event": "echo", "args": [binary(b"\x00after")]},
        {"op": "state"},
    ]
    v2 = node({"url": chat.url, "localAddress": SLOT1[0], "transports": transports,
               "actions": actions})
    connected = v2.expect("connect")
    assert connected["opened_with"] == transports[0]
    me = v2.expect("emit")["ack"]
    assert (me["slot"], me["remote_addr"]) == (1, SLOT1[0])
    assert v2.expect("emit")["ack"] == payload
    if len(transports) == 2:
        assert v2.expect("upgrade")["transport"] == "websocket"
    assert v2.expect("emit")["ack"] is True
    assert v2.expect("wait")["args"] == ["from v2"]
    assert v2.expect("wait")["args"] == ["from v4"]
    assert v2.expect("emit")["ack"] == binary(b"\x00after")
    state = v2.expect("state")
    assert state["transport"] == transports[-1] and state["connected"]
    finish(v2)

    assert v4.expect("wait")["args"] == ["from v2"]
    assert v4.expect("emit")["ack"] is True
    assert v4.expect("wait")["args"] == ["from v4"]
    finish(v4)


def test_rooms_across_protocols_and_workers(
    chat: Cluster, node: Any, python_clients: Any
) -> None:
    """A room with a v4 member on worker 0 and a v2 member on worker 1: what either sends to
    the room reaches both, and nobody outside it."""
    room = f"room-{uuid.uuid4().hex[:8]}"
    outsider = python_clients(chat.url, SLOT1[1])
    news = outsider.record("news")
    v4 = node({
        "url": chat.url, "localAddress": SLOT0[1],
        "actions": [{"op": "emit", "event": "join", "args": [room]},
                    {"op": "wait", "event": "news"},
                    {"op": "emit", "event": "to_room", "args": [{"room": room, "data": "v4"}]},
                    {"op": "wait", "event": "news"}],
    }, v2=False)
    v4.expect("connect")
    assert v4.expect("emit")["ack"]["slot"] == 0
    v2 = node({
        "url": chat.url, "localAddress": SLOT1[2],
        "actions": [{"op": "emit", "event": "join", "args": [room]},
                    {"op": "emit", "event": "to_room", "args": [{"room": room, "data": "v2"}]},
                    {"op": "wait", "event": "news"},
                    {"op": "wait", "event": "news"}],
    })
    v2.expect("connect")
    assert v2.expect("emit")["ack"]["slot"] == 1
    assert v2.expect("emit")["ack"] is True
    assert v2.expect("wait")["args"] == ["v2"]
    assert v2.expect("wait")["args"] == ["v4"]
    finish(v2)
    assert v4.expect("wait")["args"] == ["v2"]
    assert v4.expect("emit")["ack"] is True
    assert v4.expect("wait")["args"] == ["v4"]
    finish(v4)
    # The outsider's first news is a broadcast sent after both room messages.
    assert outsider.call("broadcast", "sentinel", timeout=10) is True
    assert news.get(timeout=10) == "sentinel"


@pytest.fixture(scope="module")
def other_node(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
         module_engine: str) -> Iterator[Cluster]:
    """A second node of the chat app: its own master and workers, the same Redis."""
    yield from _cluster(app_on(module_engine, "tests.apps.chat:sio"),
                        redis_url, tmp_path_factory, "--allow-eio3")


def test_broadcasts_across_nodes(chat: Cluster, other_node: Cluster, node: Any) -> None:
    """A v4 client on one node and a v2 client on another hear each other's broadcasts."""
    v4 = node({
        "url": other_node.url, "localAddress": SLOT0[6],
        "actions": [{"op": "wait", "event": "news"},
                    {"op": "emit", "event": "broadcast", "args": ["from node B"]}],
    }, v2=False)
    v4.expect("connect")
    v2 = node({
        "url": chat.url, "localAddress": SLOT1[7],
        "actions": [{"op": "emit", "event": "broadcast", "args": ["from node A"]},
                    {"op": "wait", "event": "news"},
                    {"op": "wait", "event": "news"}],
    })
    v2.expect("connect")
    assert v2.expect("emit")["ack"] is True
    assert v2.expect("wait")["args"] == ["from node A"]
    assert v2.expect("wait")["args"] == ["from node B"]
    finish(v2)
    assert v4.expect("wait")["args"] == ["from node A"]
    assert v4.expect("emit")["ack"] is True
    finish(v4)


# --- Namespaces and refusals (an egg-socket.io style app directory) ------------------------------


@pytest.fixture(scope="module")
def fwapp(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
          module_engine: str) -> Iterator[Cluster]:
    trace = tmp_path_factory.mktemp("fwtrace") / "trace.log"
    yield from _cluster(str(APP_DIRS[module_engine]), redis_url, tmp_path_factory,
                        "--allow-eio3", "--env", "prod", *_engine_args(module_engine),
                        env={"FWAPP_TRACE": str(trace)}, engine=module_engine)


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
def test_namespaces_of_an_app_directory(fwapp: Cluster, node: Any, transports: list[str]) -> None:
    """The v2 client's handshake query reaches the connection middleware, an event emitted by
    it arrives, and a second namespace on the same connection is served; an unknown namespace
    is refused with the v2 error packet ("Invalid namespace")."""
    v2 = node({
        "url": fwapp.url, "localAddress": SLOT0[2], "transports": transports,
        "query": {"token": "good"},
        "namespaces": [{"name": "/chat"}, {"name": "/nope", "expect_error": True}],
        "actions": [{"op": "wait", "event": "welcome"},
                    {"op": "emit", "event": "echo", "args": [1, binary(b"\x01")],
                     "namespace": "/chat"},
                    {"op": "emit", "event": "whoami", "namespace": "/chat"}],
    })
    refused = v2.expect("namespace_error")
    assert (refused["namespace"], refused["error"]) == ("/nope", "Invalid namespace")
    connected = v2.expect("connect")
    assert set(connected["namespaces"]) == {"/", "/chat"}
    [welcome] = v2.expect("wait")["args"]
    assert welcome["greeting"] == "hello"
    assert v2.expect("emit")["ack"] == [1, binary(b"\x01")]
    me = v2.expect("emit")["ack"]
    assert (me["namespace"], me["slot"]) == ("/chat", 0)
    finish(v2)


def test_namespace_query_is_the_auth_payload(chat: Cluster, node: Any) -> None:
    """`io('/chat', {query})` of a v2 client reaches the connect handler as its auth."""
    v2 = node({
        "url": chat.url, "localAddress": SLOT1[6],
        "namespaces": [{"name": "/chat", "query": {"token": "abc"}}],
        "actions": [{"op": "emit", "event": "auth", "namespace": "/chat"}],
    })
    assert set(v2.expect("connect")["namespaces"]) == {"/", "/chat"}
    assert v2.expect("emit")["ack"] == {"token": "abc"}
    finish(v2)


def test_refused_connection_reaches_the_v2_error_handler(fwapp: Cluster, node: Any) -> None:
    """A connection middleware's refusal is an ERROR packet whose payload is the message, as
    the Socket.IO 2 server sent it."""
    v2 = node({"url": fwapp.url, "localAddress": SLOT1[3], "query": {"token": "bad"},
               "expect_error": True})
    refused = v2.expect("namespace_error")
    assert (refused["namespace"], refused["error"]) == ("/", "bad token")


# --- The gateway ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gwapp(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
          module_engine: str) -> Iterator[Cluster]:
    yield from _cluster(str(APPS / "gwapp"), redis_url, tmp_path_factory, "--allow-eio3",
                        "--env", "prod", *_engine_args(module_engine),
                        env={"GWAPP_CENTRAL_KEY": "central-key"}, engine=module_engine)


def test_gateway_flow_from_a_v2_client(gwapp: Cluster, node: Any) -> None:
    """saveId on connect, sendToOthers both ways with a python (v5) client on the other worker,
    and reconnectAndUpdates: a new v2 socket takes over the first one's userId."""
    python = GwClient(SLOT0[3])
    try:
        python.connect(gwapp.url)
        first = node({
            "url": gwapp.url, "localAddress": SLOT1[4],
            "actions": [
                {"op": "wait", "event": RESPONSE_MESSAGE},
                {"op": "emit", "event": REQUEST_MESSAGE, "args": [signed_request(
                    SEND_TO_OTHERS, SIG_APP, SIG_KEY, payload={"from": "v2"},
                    target=python.user_id)]},
                {"op": "wait", "event": RESPONSE_MESSAGE},
            ],
        })
        v2_id = first.expect("connect")["id"]
        [saved] = first.expect("wait")["args"]
        assert saved["data"]["action"] == SAVE_ID
        v2_sid, v2_user = saved["data"]["payload"]["socketId"], saved["data"]["payload"]["userId"]
        assert v2_sid and v2_user and v2_id
        assert_success(first.expect("emit")["ack"], python.user_id)
        got = python.expect(EXCHANGE)
        assert got["data"]["payload"] == {"from": "v2"}
        assert (got["meta"]["client"], got["meta"]["userId"]) == (v2_sid, v2_user)
        assert_success(python.request(SEND_TO_OTHERS, target=v2_sid, payload="to v2"), v2_sid)
        [exchange] = first.expect("wait")["args"]
        assert exchange["data"] == {"action": EXCHANGE, "payload": "to v2"}
        finish(first)

        # The first socket is gone; a new one (worker 0 now) presents the old userId.
        second = node({
            "url": gwapp.url, "localAddress": SLOT0[4],
            "actions": [
                {"op": "wait", "event": RESPONSE_MESSAGE},
                {"op": "emit", "event": REQUEST_MESSAGE, "args": [signed_request(
                    RE_CONNECT_AND_UPDATES, SIG_APP, SIG_KEY, user_id=v2_user)]},
                {"op": "ready"},
                {"op": "wait", "event": RESPONSE_MESSAGE},
                {"op": "wait", "event": RESPONSE_MESSAGE},
            ],
        })
        second.expect("connect")
        [fresh] = second.expect("wait")["args"]
        new_sid = fresh["data"]["payload"]["socketId"]
        assert fresh["data"]["payload"]["userId"] != v2_user
        updated = second.expect("emit")["ack"]
        assert updated["data"]["action"] == RE_CONNECT_UPDATED
        assert updated["data"]["payload"] == {"socketId": new_sid, "userId": v2_user}
        second.expect("ready")
        assert second.expect("wait")["args"][0]["data"]["action"] == RE_CONNECT_UPDATED
        assert_success(python.request(SEND_TO_OTHERS, target=v2_user, payload="again"), v2_user)
        [again] = second.expect("wait")["args"]
        assert again["data"] == {"action": EXCHANGE, "payload": "again"}
        finish(second)
    finally:
        python.sio.shutdown()


# --- Heartbeat -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fastping(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
         module_engine: str) -> Iterator[Cluster]:
    yield from _cluster(app_on(module_engine, "tests.apps.fastping:sio"),
                        redis_url, tmp_path_factory, "--allow-eio3")


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
def test_idle_v2_client_stays_connected(
    fastping: Cluster, node: Any, transports: list[str]
) -> None:
    """With a 0.3 s ping interval, an idle v2 client pings, gets its pongs, and is still
    connected and served ten intervals later."""
    v2 = node({
        "url": fastping.url, "localAddress": SLOT1[5], "transports": transports,
        "actions": [{"op": "sleep", "ms": 3000}, {"op": "state"},
                    {"op": "emit", "event": "whoami"}],
    })
    v2.expect("connect")
    v2.expect("sleep")
    state = v2.expect("state")
    assert state["ping_interval"] == 300
    assert state["connected"] and state["disconnects"] == []
    assert state["pongs"] >= 3, state
    assert v2.expect("emit")["ack"]["slot"] == 1
    finish(v2)


# --- allow_eio3 off ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v4_only(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
         module_engine: str) -> Iterator[Cluster]:
    yield from _cluster(app_on(module_engine, "tests.apps.chat:sio"),
                        redis_url, tmp_path_factory)


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
def test_v2_client_refused_without_allow_eio3(
    v4_only: Cluster, node: Any, transports: list[str]
) -> None:
    """Without --allow-eio3 the v2 client's connection fails at once (HTTP 400), no hang."""
    v2 = node({"url": v4_only.url, "localAddress": SLOT0[5], "transports": transports,
               "expect_refusal": True})
    refused = v2.expect("refused")
    if transports == ["polling"]:
        assert refused["description"] == 400
    assert v2.proc.wait(10) == 0
