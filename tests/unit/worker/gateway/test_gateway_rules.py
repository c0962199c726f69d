"""The gateway's decisions as pure functions (sioctl.worker.gateway.rules): no registry, socket
or server, the clock passed in. The cluster tests (test_gateway*.py) prove the same rules end to
end; these pin the decisions an asyncio engine's gateway will reuse unchanged."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest

from sioctl.worker.gateway import rules, wire
from sioctl.worker.gateway.config import parse_gateway_config

NOW = 1_700_000_000_000
CONFIG = parse_gateway_config({
    "md5app": {"key": "k1"},
    "signed": {"key": "k2", "handshake_sign": True},
    "hmacapp": {"key": "k3", "scheme": "hmac-sha256"},
    "once": {"key": "k4", "md5_replay": "refuse"},
    "mine": {"key": "k5", "md5_replay": "same_socket"},
})


def envelope(app: str, key: str, action: str = wire.BROADCAST, payload: object = "hi") -> dict:
    return {"meta": {"timestamp": NOW, "app": app, "sign": wire.sign(app, key, NOW)},
            "data": {"action": action, "payload": payload}}


def test_the_rules_module_does_no_io() -> None:
    tree = ast.parse(Path(rules.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported <= {"__future__", "json", "uuid", "dataclasses", "typing"}


def test_handshake_refusals() -> None:
    assert rules.handshake_refusal(CONFIG, None, NOW) is None  # not every app demands a sign
    assert rules.handshake_refusal(CONFIG, {"app": 5}, NOW) == "auth.app must be a string"
    assert rules.handshake_refusal(CONFIG, {"app": "md5app", "timestamp": True}, NOW) == (
        "auth.timestamp must be an integer (ms since the epoch)")
    signed = {"app": "signed", "timestamp": NOW, "sign": wire.sign("signed", "k2", NOW)}
    assert rules.handshake_refusal(CONFIG, signed, NOW) is None
    assert rules.handshake_refusal(CONFIG, {**signed, "sign": "0" * 32}, NOW) == "bad signature"
    only_signed = parse_gateway_config({"signed": {"key": "k2", "handshake_sign": True}})
    assert "must carry a signed auth" in str(rules.handshake_refusal(only_signed, {}, NOW))


def test_requests_are_checked_for_form_signature_and_rights() -> None:
    good = envelope("md5app", "k1")
    assert rules.check_request(CONFIG, [good], NOW) is good
    with pytest.raises(rules.Denied, match="one envelope, got 2"):
        rules.check_request(CONFIG, [good, good], NOW)
    with pytest.raises(rules.Denied, match="malformed envelope"):
        rules.check_request(CONFIG, [{"meta": {}}], NOW)
    deep: object = "x"
    for _ in range(200):
        deep = [deep]
    with pytest.raises(rules.Denied, match="nested deeper"):
        rules.check_request(CONFIG, [envelope("md5app", "k1", payload=deep)], NOW)
    with pytest.raises(rules.Denied, match="outside the allowed window"):
        rules.check_request(CONFIG, [good], NOW + 10 * 60 * 1000)
    rules.check_rights(CONFIG, "md5app", wire.BROADCAST, None)
    with pytest.raises(rules.Denied, match="requires a handshake signed for it"):
        rules.check_rights(CONFIG, "signed", wire.BROADCAST, "md5app")
    with pytest.raises(rules.Denied, match="not accepted from clients"):
        rules.check_rights(CONFIG, "md5app", wire.SAVE_ID, None)
    with pytest.raises(rules.Denied, match="unknown action"):
        rules.check_rights(CONFIG, "md5app", "dance", None)


def test_replay_claims() -> None:
    assert rules.replay_claim(CONFIG, "md5app", None, "s", "sid1") is None
    hmac_claim = rules.replay_claim(CONFIG, "hmacapp", "n1", "s", "sid1")
    assert hmac_claim == rules.ReplayClaim("nonce", "n1", "", 2 * CONFIG.window_seconds)
    same = rules.replay_claim(CONFIG, "mine", None, "s", "sid1")
    assert same is not None and (same.what, same.owner) == ("signature", "socket:sid1")
    # An HTTP call (no socket) and the refuse mode get an owner nobody else has.
    for app, sid in (("mine", None), ("once", "sid1")):
        claim = rules.replay_claim(CONFIG, app, None, "s", sid)
        assert claim is not None and claim.owner.startswith("once:")
        assert claim != rules.replay_claim(CONFIG, app, None, "s", sid)


def test_connect_claims() -> None:
    user = str(uuid.uuid4())
    assert rules.connect_claim({"userId": user}, "md5app", "vouched") == ("vouched", True)
    assert rules.connect_claim({"userId": user}, "md5app", None) == (user, False)
    assert rules.connect_claim({"userId": user}, None, None) is None  # unsigned handshake
    assert rules.connect_claim({"userId": "not-a-uuid"}, "md5app", None) is None
    assert rules.connect_claim(None, "md5app", None) is None


def test_http_messages_are_checked_for_form_and_signature() -> None:
    import json

    body = {"timestamp": NOW, "app": "md5app", "target": "someone", "userId": None,
            "sign": wire.sign("md5app", "k1", NOW), "message": {"hello": 1}}
    assert rules.check_http_message(CONFIG, json.dumps(body).encode(), NOW) == body
    refusals = {
        b"{": (422, "the body is not JSON", ["body"]),
        json.dumps({**body, "sign": 5}).encode(): (422, "malformed body", ["sign"]),
        json.dumps({**body, "sign": "0" * 32}).encode(): (401, "bad signature", []),
    }
    for raw, expected in refusals.items():
        with pytest.raises(rules.Refused) as refused:
            rules.check_http_message(CONFIG, raw, NOW)
        assert (refused.value.status, refused.value.message, refused.value.fields) == expected
    exchange = rules.http_exchange(body)
    assert exchange["meta"]["client"] == "http" and exchange["meta"]["target"] == "someone"
    assert exchange["data"]["payload"] == {"hello": 1}
