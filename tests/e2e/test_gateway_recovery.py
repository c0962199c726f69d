"""The gateway under connection state recovery (issue 18): a signed client of tests/apps/gwapp
(the official socket.io-client@4) that loses its connection comes back as the same socket with
the same userId, and is still reachable by it. Both engines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sioctl.worker.gateway.wire import CONNECT, DISCONNECT, EXCHANGE, SEND_TO_OTHERS
from tests.support.cluster import ENGINES
from tests.support.gateway import (
    GATEWAY_IPS,
    SIG_APP,
    GwClient,
    JsGwClient,
    assert_success,
    signed_auth,
)
from tests.support.paths import APPS_DIR


@pytest.mark.parametrize("engine", ENGINES)
def test_a_recovered_gateway_client_keeps_its_user_id(
    start_cluster: Callable[..., Any], client: Callable[..., GwClient],
    js_client: Callable[..., JsGwClient],
) -> None:
    cluster = start_cluster(app=str(APPS_DIR / "gwapp"),
                            extra_args=["--connection-state-recovery", "30"],
                            env={"GWAPP_CENTRAL_KEY": "central"})
    target = js_client(GATEWAY_IPS[0], "v4")
    target.reconnection = True
    target.connect(cluster.url, signed_auth())
    sender = client(GATEWAY_IPS[1])
    sender.connect(cluster.url)
    assert_success(sender.request(SEND_TO_OTHERS, target=target.user_id, payload="before"),
                   target.user_id)
    assert target.expect(EXCHANGE)["data"]["payload"] == "before"

    back = target.blip()
    assert back["recovered"] is True and back["id"] == target.socket_id, back
    # Its peer heard it go and come back (docs/design.md §8: the notices of a recovery).
    for action in (DISCONNECT, CONNECT):
        notice = sender.expect(action)["data"]["payload"]
        assert notice == {"socketId": target.sid, "userId": target.user_id}, notice

    # Still registered under its userId (and its socket id), bound to its app.
    for n, address in enumerate((target.user_id, target.sid)):
        assert_success(sender.request(SEND_TO_OTHERS, target=address, payload=n), address)
        got = target.expect(EXCHANGE)
        assert got["data"]["payload"] == n and got["meta"]["target"] == address
    ack = target.request(SEND_TO_OTHERS, target=sender.user_id, payload="from the target")
    assert_success(ack, sender.user_id)
    got = sender.expect(EXCHANGE)
    assert got["meta"]["userId"] == target.user_id and got["meta"]["app"] == SIG_APP
    # A recovered socket that kept its userId gets no saveId (it knows its ids).
    target.assert_quiet()
