"""The official JavaScript socket.io-client through the master (tests/js/client.js)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.clients import BoundClient, expected_slot, ips_for_slot, wait_for_upgrade, whoami
from tests.support.cluster import ENGINES
from tests.support.node import NodeClient, require_node

WORKERS = 2


@pytest.fixture(autouse=True)
def node_ready() -> None:
    require_node()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("transports", [["polling", "websocket"], ["websocket"]])
def test_js_client_through_the_master(
    start_cluster: Callable[..., Any],
    connect: Callable[..., BoundClient],
    transports: list[str],
) -> None:
    cluster = start_cluster(workers=WORKERS)
    js_ip = ips_for_slot(1, WORKERS)[0]
    js_slot = expected_slot(js_ip, WORKERS)
    # A python client on the other worker sends the broadcast.
    python_client = connect(cluster, ips_for_slot(0, WORKERS)[0])
    wait_for_upgrade(python_client)
    assert whoami(python_client)["slot"] != js_slot

    echo = {"hello": "from js", "n": [1, 2, 3]}
    node = NodeClient(
        {
            "url": cluster.url,
            "localAddress": js_ip,
            "transports": transports,
            "timeout": 15000,
            "actions": [
                {"op": "upgrade"},
                {"op": "emit", "event": "whoami"},
                {"op": "emit", "event": "echo", "args": [echo]},
                {"op": "ready"},
                {"op": "wait", "event": "news"},
            ],
        }
    )
    try:
        connected = node.expect("connect")
        assert connected["opened_with"] == transports[0]
        assert node.expect("upgrade")["transport"] == "websocket"
        answer = node.expect("emit")["ack"]
        assert answer["slot"] == js_slot
        assert answer["pid"] == cluster.worker_pids()[js_slot]
        assert answer["remote_addr"] == js_ip
        assert answer["sid"] == connected["id"]
        assert node.expect("emit")["ack"] == echo
        node.expect("ready")

        token = f"python-{uuid.uuid4().hex}"
        assert python_client.call("broadcast", token, timeout=10) is True
        assert node.expect("wait")["args"] == [token]
        node.expect("done")
        assert node.proc.wait(10) == 0
    finally:
        node.close()
