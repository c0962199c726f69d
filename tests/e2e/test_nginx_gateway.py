"""The gateway across nodes behind a real nginx: sendToOthers and /api/transportMessage reach a
client on the other node."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from sioctl.worker.gateway import wire
from tests.support.clients import bound_session
from tests.support.cluster import ENGINES
from tests.support.nginx import (
    NODE_ARGS,
    Front,
    connect_all,
    stream_module,
)
from tests.support.paths import APPS_DIR

GWAPP = APPS_DIR / "gwapp"
ENV = {"GWAPP_CENTRAL_KEY": "central-behind-nginx"}
APP, KEY = "signatureApp", "signature-app-key"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["http", "stream"])
def test_gateway_messages_cross_nodes_behind_nginx(
    kind: str, start_cluster: Any, start_nginx: Any, connect: Any
) -> None:
    if kind == "stream":
        stream_module()
    nodes = [start_cluster(app=str(GWAPP), env=ENV, extra_args=list(NODE_ARGS[kind]))
             for _ in range(2)]
    front = Front(nodes, start_nginx(kind, nodes))
    # nginx's consistent hash depends on the nodes' (random) ports as well: add clients from
    # new addresses until both nodes have some (8 addresses all land on one node ~1% of runs).
    by_node: dict[int, list[Any]] = {0: [], 1: []}
    for host in range(2, 42):
        if by_node[0] and by_node[1]:
            break
        for client in connect_all(connect, front.url, [f"127.0.0.{host}"]):
            by_node[front.where(client)[0]].append(client)
    assert by_node[0] and by_node[1], "nginx sent 40 client addresses to one node"
    sender, target = by_node[0][0], by_node[1][0]
    inbox: queue.Queue[Any] = target.record("responseMessage")
    me = target.call("requestMessage", wire.signed_request(wire.REQUEST_ID, APP, KEY), timeout=10)
    user_id = me["data"]["payload"]["userId"]

    def next_exchange() -> dict[str, Any]:
        while True:
            message = inbox.get(timeout=10)
            if message["data"]["action"] == wire.EXCHANGE:
                return message

    ack = sender.call("requestMessage", wire.signed_request(
        wire.SEND_TO_OTHERS, APP, KEY, payload={"hi": "from node 0"}, target=user_id), timeout=10)
    assert ack == {"status": 200, "success": True, "target": user_id}
    assert next_exchange()["data"]["payload"] == {"hi": "from node 0"}

    # A web page's call, from a third address, through nginx, to whichever node.
    timestamp = wire.now_ms()
    body = {"timestamp": timestamp, "app": APP, "target": user_id, "userId": "web",
            "sign": wire.sign(APP, KEY, timestamp), "message": "over http"}
    reply = bound_session("127.0.0.30").post(front.url + "/api/transportMessage", json=body,
                                             timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"status": 200, "success": True, "message": "delivered"}
    assert next_exchange()["data"]["payload"] == "over http"
