"""Emitting into a running cluster from another process, through its Redis."""

from __future__ import annotations

import queue
from typing import Any

import pytest
import socketio

from sioctl.worker.gateway import wire
from sioctl.worker.gateway.external import ExternalGateway
from tests.support.clients import ips_for_slot, whoami
from tests.support.cluster import ENGINES
from tests.support.paths import APPS_DIR

GWAPP = APPS_DIR / "gwapp"
QUIET = 1.0


@pytest.mark.parametrize("engine", ENGINES)
def test_python_socketio_write_only_manager_reaches_every_worker(
    start_cluster: Any, connect: Any, redis_url: str
) -> None:
    cluster = start_cluster()
    first = connect(cluster, ips_for_slot(0, 2)[0])
    second = connect(cluster, ips_for_slot(1, 2)[0])
    assert {whoami(first)["slot"], whoami(second)["slot"]} == {0, 1}
    news = {c: c.record("news") for c in (first, second)}
    assert second.call("join", "members", timeout=10)

    emitter = socketio.RedisManager(redis_url, write_only=True)  # a cron job, a web backend
    emitter.emit("news", "for everyone")
    assert news[first].get(timeout=10) == "for everyone"
    assert news[second].get(timeout=10) == "for everyone"
    emitter.emit("news", "for members", room="members")
    emitter.emit("news", "for the first", room=first.get_sid("/"))
    assert news[second].get(timeout=10) == "for members"
    assert news[first].get(timeout=10) == "for the first"
    with pytest.raises(queue.Empty):
        news[first].get(timeout=QUIET)
    with pytest.raises(queue.Empty):
        news[second].get(timeout=0.1)


def test_external_gateway_sends_to_users_and_apps(
    start_cluster: Any, connect: Any, redis_url: str
) -> None:
    cluster = start_cluster(app=str(GWAPP), env={"GWAPP_CENTRAL_KEY": "central"})
    client = connect(cluster, ips_for_slot(1, 2)[0])
    inbox = client.record("responseMessage")
    # A signed request puts the socket in its app; its answer says who the socket is.
    answer = client.call("requestMessage", wire.signed_request(wire.REQUEST_ID, "signatureApp",
                                                               "signature-app-key"), timeout=10)
    user_id = answer["data"]["payload"]["userId"]
    # Let the saveIds (of connect, if it came after record(), and of requestId) go by.
    while True:
        try:
            assert inbox.get(timeout=0.5)["data"]["action"] == wire.SAVE_ID
        except queue.Empty:
            break

    gateway = ExternalGateway(redis_url)
    assert gateway.send(user_id, {"invoice": 7}, app="signatureApp", user_id="billing")
    message = inbox.get(timeout=10)
    assert message["data"] == {"action": wire.EXCHANGE, "payload": {"invoice": 7}}
    assert message["meta"]["client"] == "external" and message["meta"]["userId"] == "billing"
    assert not gateway.send("nobody-online", {}, app="signatureApp")

    gateway.broadcast("signatureApp", "maintenance at noon")
    message = inbox.get(timeout=10)
    assert message["data"] == {"action": wire.BROADCAST, "payload": "maintenance at noon"}
    gateway.broadcast("hmacApp", "not for this app")
    with pytest.raises(queue.Empty):
        inbox.get(timeout=QUIET)
