"""Helpers of the gateway's end-to-end tests (tests/e2e/test_gateway*.py, test_hardening_*.py,
test_js_client_v2.py): the app they serve (tests/apps/gwapp), its keys, source addresses on each
slot, ``GwClient`` (a Socket.IO client speaking the gateway's wire format), signed requests and
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
SLOT0 = ips_for_slot(0, WORKERS)
SLOT1 = ips_for_slot(1, WORKERS)


class GwClient:
    """A python-socketio client of the gateway, keeping every responseMessage it receives."""

    def __init__(self, source_ip: str) -> None:
        self.sio = make_client(source_ip, reconnection=False)
        self.inbox: queue.Queue[Any] = self.sio.record(RESPONSE_MESSAGE)
        # Messages taken off the queue while looking for another action.
        self.pending: deque[Any] = deque()
        self.sid = ""
        self.user_id = ""

    def connect(self, url: str, auth: Any = None) -> dict[str, Any]:
        """Connect; returns the saveId message, whose ids the client keeps."""
        self.sio.connect(url, auth=auth)
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
            try:
                message = self.inbox.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no {action!r} responseMessage within {timeout:g}s; "
                    f"pending: {list(self.pending)}"
                ) from None
            # The seed's unified return format: every reply carries meta.target.
            assert "target" in message.get("meta", {}), message
            if action_of(message) == action:
                return dict(message)
            self.pending.append(message)

    def assert_quiet(self) -> None:
        """Nothing else arrives (waits QUIET seconds)."""
        try:
            extra = self.inbox.get(timeout=QUIET)
        except queue.Empty:
            extra = None
        assert extra is None and not self.pending, (
            f"unexpected responseMessage: {extra or list(self.pending)}"
        )

    def call(self, *args: Any) -> Any:
        """Emit requestMessage with these arguments; returns the ack. A deny, saveId or
        reconnectUpdated answer is also sent as a responseMessage: that copy is consumed and
        must equal the ack."""
        data: Any = args[0] if len(args) == 1 else (args if args else None)
        ack = self.sio.call(REQUEST_MESSAGE, data, timeout=TIMEOUT)
        action = action_of(ack)
        if action in (DENY, SAVE_ID, RE_CONNECT_UPDATED):
            assert self.expect(action) == ack
            # Addressed to this socket (the seed's unified return format).
            assert ack["meta"]["target"] == self.sio.get_sid("/"), ack
        return ack

    def request(self, action: str, app: str = SIG_APP, key: str = SIG_KEY, **kwargs: Any) -> Any:
        """A signed requestMessage (protocol.signed_request); returns the ack."""
        return self.call(signed_request(action, app, key, client=self.sid or None, **kwargs))

    def wait_disconnected(self) -> None:
        wait_until(lambda: not self.sio.connected, TIMEOUT, what="the server to disconnect")


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
