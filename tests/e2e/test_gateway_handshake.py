"""Apps with handshake_sign: the socket.io handshake itself must carry a valid signature."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from sioctl.worker.gateway import wire
from tests.support.cluster import ENGINES
from tests.support.paths import APPS_DIR

# Every test runs on both engines: gwapp loads on either shell.
pytestmark = pytest.mark.parametrize("engine", ENGINES)

GWAPP = APPS_DIR / "gwapp"
ENV = {"GWAPP_CENTRAL_KEY": "central-from-env"}
STRICT = ("strictApp", "strict-app-key")


def signed_auth(app: str, key: str) -> dict[str, Any]:
    timestamp = wire.now_ms()
    return {"app": app, "timestamp": timestamp, "sign": wire.sign(app, key, timestamp)}


def test_handshake_signature_required_by_the_app(start_cluster: Any, connect: Any) -> None:
    cluster = start_cluster(app=str(GWAPP), env=ENV)

    # Signed handshake: accepted, and the app's requests are served.
    signed = connect(cluster, "127.0.0.2")
    signed.disconnect()
    answers: queue.Queue[Any] = signed.record("responseMessage")
    signed.connect(cluster.url, auth=signed_auth(*STRICT))
    reply = signed.call("requestMessage", wire.signed_request(wire.REQUEST_ID, *STRICT), timeout=10)
    assert reply["data"]["action"] == wire.SAVE_ID
    assert answers.get(timeout=10)["data"]["action"] == wire.SAVE_ID  # the saveId of connect

    # No signed handshake: the socket connects (other apps allow it) but strictApp is denied.
    plain = connect(cluster, "127.0.0.3")
    reply = plain.call("requestMessage", wire.signed_request(wire.REQUEST_ID, *STRICT), timeout=10)
    assert reply["data"]["action"] == wire.DENY
    assert "requires a handshake signed" in reply["data"]["payload"]["reason"]


def test_a_badly_signed_handshake_is_refused(start_cluster: Any, connect: Any) -> None:
    cluster = start_cluster(app=str(GWAPP), env=ENV)
    client = connect(cluster, "127.0.0.2")
    client.disconnect()
    errors: queue.Queue[Any] = queue.Queue()
    client.on("connect_error", errors.put)
    bad = signed_auth(STRICT[0], "not-the-key")
    with pytest.raises(Exception, match="failed to connect"):
        client.connect(cluster.url, auth=bad, retry=False)
    assert errors.get(timeout=10) == {"message": "bad signature"}
