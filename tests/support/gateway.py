"""Helpers of the gateway's end-to-end tests (tests/e2e/test_gateway*.py, test_hardening_*.py,
test_js_client_v2.py): the app they serve (tests/apps/gwapp), its keys, source addresses on each
slot, ``GwClient`` (a python-socketio client speaking the gateway's wire format) and
``JsGwClient`` (the official JS client of v4 or v2, the same methods), signed requests and
the assertions on the gateway's answers. The ``client`` fixture is in tests/e2e/conftest.py."""

from __future__ import annotations

import json
import queue
import secrets
from collections import deque
from typing import Any

import requests

from sioctl.worker.gateway.wire import (
    DENY,
    RE_CONNECT_UPDATED,
    REQUEST_MESSAGE,
    RESPONSE_MESSAGE,
    SAVE_ID,
    now_ms,
    sign,
    signed_request,
)
from tests.support.clients import ips_for_slot, make_client, wait_until
from tests.support.node import NodeClient
from tests.support.paths import APPS_DIR

APP_DIR = APPS_DIR / "gwapp"
WORKERS = 2
SIG_APP, SIG_KEY = "signatureApp", "signature-app-key"
# Given to the cluster through GWAPP_CENTRAL_KEY; it must never show in the cluster's log.
CENTRAL_KEY = "central-" + secrets.token_hex(16)
HTTP_PATH = "/api/transportMessage"
# How long a test waits to be sure that something does NOT arrive.
QUIET = 1.0
TIMEOUT = 10.0
# Enough source addresses on each worker for the longest flow (8 clients on one slot).
GATEWAY_IPS = [f"127.0.0.{i}" for i in range(2, 40)]
SLOT0 = ips_for_slot(0, WORKERS, GATEWAY_IPS)
SLOT1 = ips_for_slot(1, WORKERS, GATEWAY_IPS)


class GatewayPeer:
    """What a test does with a client of the gateway, whatever the client: connect, take the
    responseMessages it receives by action, send signed requests, leave. Subclasses give the
    transport: :meth:`_connect`, :meth:`_next_message`, :meth:`_emit`, :meth:`disconnect`."""

    def __init__(self) -> None:
        # Messages taken off the client while looking for another action.
        self.pending: deque[Any] = deque()
        self.sid = ""
        self.user_id = ""
        # The id the client itself knows its socket by (socket.id).
        self.socket_id = ""

    def _connect(self, url: str, auth: Any) -> str:
        """Connect; returns the client's own socket id."""
        raise NotImplementedError

    def _next_message(self, timeout: float) -> Any:
        """The next responseMessage received, None when none comes within ``timeout``."""
        raise NotImplementedError

    def _emit(self, data: Any) -> Any:
        """Emit requestMessage with ``data``; returns the ack."""
        raise NotImplementedError

    def disconnect(self) -> None:
        """Leave (the client disconnects)."""
        raise NotImplementedError

    def _own_id(self) -> str:
        """The socket id the client knows itself by now."""
        return self.socket_id

    def connect(self, url: str, auth: Any = None) -> dict[str, Any]:
        """Connect; returns the saveId message, whose ids the client keeps."""
        self.socket_id = self._connect(url, auth)
        hello = self.expect(SAVE_ID)
        self.sid = hello["data"]["payload"]["socketId"]
        self.user_id = hello["data"]["payload"]["userId"]
        return hello

    def expect(self, action: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next responseMessage with this action (others stay pending, in order)."""
        for message in list(self.pending):
            if action_of(message) == action:
                self.pending.remove(message)
                return dict(message)
        while True:
            message = self._next_message(timeout)
            if message is None:
                raise AssertionError(
                    f"no {action!r} responseMessage within {timeout:g}s; "
                    f"pending: {list(self.pending)}"
                )
            # The seed's unified return format: every reply carries meta.target.
            assert "target" in message.get("meta", {}), message
            if action_of(message) == action:
                return dict(message)
            self.pending.append(message)

    def assert_quiet(self) -> None:
        """Nothing else arrives (waits QUIET seconds)."""
        extra = self._next_message(QUIET)
        assert extra is None and not self.pending, (
            f"unexpected responseMessage: {extra or list(self.pending)}"
        )

    def call(self, *args: Any) -> Any:
        """Emit requestMessage with these arguments; returns the ack. A deny, saveId or
        reconnectUpdated answer is also sent as a responseMessage: that copy is consumed and
        must equal the ack."""
        data: Any = args[0] if len(args) == 1 else (args if args else None)
        ack = self._emit(data)
        action = action_of(ack)
        if action in (DENY, SAVE_ID, RE_CONNECT_UPDATED):
            assert self.expect(action) == ack
            # Addressed to this socket (the seed's unified return format).
            assert ack["meta"]["target"] == self._own_id(), ack
        return ack

    def request(self, action: str, app: str = SIG_APP, key: str = SIG_KEY, **kwargs: Any) -> Any:
        """A signed requestMessage (protocol.signed_request); returns the ack."""
        return self.call(signed_request(action, app, key, client=self.sid or None, **kwargs))


class GwClient(GatewayPeer):
    """A python-socketio client of the gateway, keeping every responseMessage it receives."""

    def __init__(self, source_ip: str) -> None:
        super().__init__()
        self.sio = make_client(source_ip, reconnection=False)
        self.inbox: queue.Queue[Any] = self.sio.record(RESPONSE_MESSAGE)

    def _connect(self, url: str, auth: Any) -> str:
        self.sio.connect(url, auth=auth)
        return str(self.sio.get_sid("/"))

    def _next_message(self, timeout: float) -> Any:
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def _emit(self, data: Any) -> Any:
        return self.sio.call(REQUEST_MESSAGE, data, timeout=TIMEOUT)

    def disconnect(self) -> None:
        self.sio.disconnect()

    def _own_id(self) -> str:
        # A test may connect self.sio itself.
        return str(self.sio.get_sid("/"))

    def close(self) -> None:
        self.sio.shutdown()

    def wait_disconnected(self) -> None:
        wait_until(lambda: not self.sio.connected, TIMEOUT, what="the server to disconnect")


# The JavaScript clients a JsGwClient runs: the official socket.io-client of each protocol.
JS_SCRIPTS = {"v4": "client.js", "v2": "client_v2.js"}


class JsGwClient(GatewayPeer):
    """The official socket.io-client (``kind`` "v4": 4.x, "v2": 2.x, which needs a cluster
    started with --allow-eio3) as a gateway client, run interactively by node: each request
    and each look for a message is one action sent to it."""

    def __init__(self, source_ip: str, kind: str) -> None:
        super().__init__()
        self.source_ip = source_ip
        self.kind = kind
        self.node: NodeClient | None = None
        # Reconnect after a lost connection (the blip action; connection state recovery).
        self.reconnection = False

    def _connect(self, url: str, auth: Any) -> str:
        spec: dict[str, Any] = {"url": url, "localAddress": self.source_ip, "timeout": 15000,
                                "reconnection": self.reconnection}
        if auth is not None:
            # A v2 client has no handshake auth: its "/" connects with the Engine.IO session.
            assert self.kind == "v4", "socket.io-client@2 sends no auth payload"
            spec["auth"] = auth
        self.node = NodeClient(spec, script=JS_SCRIPTS[self.kind], interactive=True)
        return str(self.node.expect("connect")["id"])

    def _send(self, action: dict[str, Any]) -> dict[str, Any]:
        assert self.node is not None, "not connected"
        return self.node.send(action)

    def blip(self) -> dict[str, Any]:
        """Lose the connection without a word and come back (``reconnection`` on): the
        client's {"id", "recovered"} once back."""
        return self._send({"op": "blip"})

    def _next_message(self, timeout: float) -> Any:
        args = self._send({"op": "take", "event": RESPONSE_MESSAGE,
                           "timeout": int(timeout * 1000)})["args"]
        return None if args is None else args[0]

    def _emit(self, data: Any) -> Any:
        return self._send({"op": "emit", "event": REQUEST_MESSAGE, "args": [data]})["ack"]

    def disconnect(self) -> None:
        assert self.node is not None, "not connected"
        self.node.end()

    def close(self) -> None:
        if self.node is not None:
            self.node.close()


def action_of(message: Any) -> Any:
    """The action of a gateway message (``data.action``), None when it has none."""
    if isinstance(message, dict) and isinstance(message.get("data"), dict):
        return message["data"].get("action")
    return None


def signed_auth(app: str = SIG_APP, key: str = SIG_KEY, **extra: Any) -> dict[str, Any]:
    """A handshake auth signed for ``app`` (md5), plus ``extra`` (e.g. userId=...)."""
    timestamp = now_ms()
    return {"app": app, "timestamp": timestamp, "sign": sign(app, key, timestamp), **extra}


def assert_success(ack: Any, target: str | None = None) -> None:
    expected: dict[str, Any] = {"status": 200, "success": True}
    if target is not None:
        expected["target"] = target
    assert ack == expected


def assert_deny(ack: Any, reason: str, fields: list[str] | None = None) -> None:
    assert action_of(ack) == DENY, ack
    payload = ack["data"]["payload"]
    assert payload["reason"] == reason, payload
    if fields is not None:
        assert sorted(payload.get("fields", [])) == sorted(fields), payload


def http_body(
    target: str,
    message: Any,
    app: str = SIG_APP,
    key: str = SIG_KEY,
    timestamp: int | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    ts = now_ms() if timestamp is None else timestamp
    body: dict[str, Any] = {
        "timestamp": ts, "app": app, "target": target, "sign": sign(app, key, ts),
        "message": message,
    }
    if user_id is not None:
        body["userId"] = user_id
    return body


def post(session: requests.Session, cluster: Any, body: Any) -> requests.Response:
    """POST ``body`` (JSON-encoded unless text or bytes) to the gateway's HTTP path of
    ``cluster``; returns the response."""
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return session.post(cluster.url + HTTP_PATH, data=data, timeout=TIMEOUT,
                        headers={"Content-Type": "application/json"})
