"""The gateway's pure wire-format module: messages, signatures, config parsing, validation."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sioctl.worker.gateway import wire
from sioctl.worker.gateway.config import AppSpec, GatewayConfig, parse_gateway_config
from sioctl.worker.gateway.wire import (
    check_envelope,
    check_http_body,
    verify,
)

APP = "signatureApp"
KEY = "k"
TS = 1_700_000_000_000
WINDOW_MS = 300_000
SECRET = "s3cr3t-value-never-shown"


def md5_config(**options) -> GatewayConfig:
    return parse_gateway_config({APP: {"key": KEY}}, options or None)


def hmac_config() -> GatewayConfig:
    return parse_gateway_config({"central": {"key": KEY, "scheme": "hmac-sha256"}})


# ---------------------------------------------------------------- constants and messages


def test_constants_match_the_wire_format():
    assert wire.REQUEST_MESSAGE == "requestMessage"
    assert wire.RESPONSE_MESSAGE == "responseMessage"
    assert wire.ACTIONS == {
        "saveId", "requestId", "sendToOthers", "reconnectAndUpdates", "reconnectUpdated",
        "deny", "exchange", "broadcast", "connect", "disconnect",
    }
    assert wire.RE_CONNECT_AND_UPDATES == "reconnectAndUpdates"
    assert wire.RE_CONNECT_UPDATED == "reconnectUpdated"


def test_parse_msg_shape_timestamp_first():
    before = wire.now_ms()
    msg = wire.parse_msg("saveId", {"socketId": "a"}, {"client": "c", "userId": "u"})
    after = wire.now_ms()
    assert list(msg) == ["meta", "data"]
    assert list(msg["meta"]) == ["timestamp", "client", "userId"]
    assert before <= msg["meta"]["timestamp"] <= after
    assert isinstance(msg["meta"]["timestamp"], int)
    assert msg["data"] == {"action": "saveId", "payload": {"socketId": "a"}}


def test_parse_msg_defaults_and_metadata_timestamp_wins():
    msg = wire.parse_msg("requestId")
    assert list(msg["meta"]) == ["timestamp"]
    # The seed's helpers default the payload to {} (a new one each time); null stays null.
    assert msg["data"] == {"action": "requestId", "payload": {}}
    assert msg["data"]["payload"] is not wire.parse_msg("requestId")["data"]["payload"]
    assert wire.parse_msg("requestId", None)["data"]["payload"] is None
    for helper in (wire.parse_broadcast_msg, wire.parse_deny_msg, wire.parse_exchange_msg):
        assert helper()["data"]["payload"] == {}
    assert wire.parse_msg("x", metadata={"timestamp": 5})["meta"] == {"timestamp": 5}


@pytest.mark.parametrize(
    "helper, action",
    [
        (wire.parse_broadcast_msg, "broadcast"),
        (wire.parse_deny_msg, "deny"),
        (wire.parse_exchange_msg, "exchange"),
    ],
)
def test_fixed_action_helpers(helper, action):
    msg = helper([1, 2], {"app": APP})
    assert msg["data"] == {"action": action, "payload": [1, 2]}
    assert list(msg["meta"]) == ["timestamp", "app"]


def test_module_is_pure_stdlib():
    code = (
        "import sys; import sioctl.worker.gateway.wire, sioctl.worker.gateway.protocol; "
        "bad = {'eventlet', 'socketio', 'engineio', 'redis'} & set(sys.modules); "
        "print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- signatures


def test_sign_known_vector():
    expected = hashlib.md5(b"signatureAppk1700000000000").hexdigest()
    assert wire.sign(APP, KEY, TS) == expected
    assert expected == "f7bf5999113046e949370f3da17f93bf"


def test_sign_hmac_known_vector():
    payload = {"b": 1, "a": "é", "n": [1, None]}
    message = 'central\n1700000000000\nnonce1\n{"a":"é","b":1,"n":[1,null]}'
    expected = hmac.new(b"k", message.encode("utf-8"), hashlib.sha256).hexdigest()
    assert wire.sign_hmac("central", KEY, TS, "nonce1", payload) == expected


def test_verify_md5_accepts_valid_sign():
    assert verify(md5_config(), APP, TS, wire.sign(APP, KEY, TS), TS) is None


@pytest.mark.parametrize("offset", [-WINDOW_MS, WINDOW_MS, 0, 1, -1])
def test_window_edges_accepted(offset):
    ts = TS + offset
    assert verify(md5_config(), APP, ts, wire.sign(APP, KEY, ts), TS) is None


@pytest.mark.parametrize("offset", [-WINDOW_MS - 1, WINDOW_MS + 1, 10**9, -(10**9)])
def test_beyond_window_refused_expired_and_future(offset):
    ts = TS + offset
    reason = verify(md5_config(), APP, ts, wire.sign(APP, KEY, ts), TS)
    assert reason == "timestamp outside the allowed window (±300 s)"


def test_window_is_configurable():
    config = md5_config(window_seconds=2)
    ts = TS - 2001
    assert verify(config, APP, ts, wire.sign(APP, KEY, ts), TS) == (
        "timestamp outside the allowed window (±2 s)"
    )
    ts = TS - 2000
    assert verify(config, APP, ts, wire.sign(APP, KEY, ts), TS) is None


def test_unknown_app():
    assert verify(md5_config(), "other", TS, wire.sign("other", KEY, TS), TS) == (
        "unknown app 'other'"
    )
    assert verify(md5_config(), 5, TS, "x", TS) == "unknown app (a int, not a name)"
    long_reason = verify(md5_config(), "x" * 10_000, TS, "x", TS)
    assert long_reason is not None and len(long_reason) < 100


@pytest.mark.parametrize(
    "bad_sign",
    [
        None, 5, 5.0, True, [], {}, b"f7bf5999113046e949370f3da17f93bf", "",
        "f7bf5999113046e949370f3da17f93b",  # one short
        "f7bf5999113046e949370f3da17f93bf0",  # one long
        "F7BF5999113046E949370F3DA17F93BF",  # not lowercase
        "é" * 32,  # non-ASCII of the right length
        "0" * 32,
    ],
)
def test_wrong_sign_is_bad_signature(bad_sign):
    assert verify(md5_config(), APP, TS, bad_sign, TS) == "bad signature"


@pytest.mark.parametrize("bad_ts", [None, "1700000000000", 1.7e12, True, [TS]])
def test_wrong_timestamp_type(bad_ts):
    assert verify(md5_config(), APP, bad_ts, wire.sign(APP, KEY, TS), TS) == "bad timestamp"


def test_sign_for_another_key_refused():
    assert verify(md5_config(), APP, TS, wire.sign(APP, "other", TS), TS) == "bad signature"


def test_hmac_scheme_binds_payload_and_nonce():
    config = hmac_config()
    payload = {"text": "hi", "n": 1}
    good = wire.sign_hmac("central", KEY, TS, "n1", payload)
    assert verify(config, "central", TS, good, TS, "n1", payload) is None
    assert verify(config, "central", TS, good, TS, "n1", {"text": "bye", "n": 1}) == (
        "bad signature"
    )
    assert verify(config, "central", TS, good, TS, "n2", payload) == "bad signature"
    assert verify(config, "central", TS, good, TS, None, payload) == "missing nonce"
    # The md5 signature is refused for an hmac app.
    assert verify(config, "central", TS, wire.sign("central", KEY, TS), TS, "n1", payload) == (
        "bad signature"
    )


def test_hmac_unserialisable_payload_is_bad_signature():
    config = hmac_config()
    sign = "0" * 64
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    for payload in (nested, {1: "a", "b": 2}, "\ud800", object()):
        assert verify(config, "central", TS, sign, TS, "n1", payload) == "bad signature"


def test_signed_request_md5_verifies():
    env = wire.signed_request("sendToOthers", APP, KEY, {"x": 1}, target="t", client="c",
                                  user_id="u")
    assert check_envelope(env) == []
    meta = env["meta"]
    assert list(meta) == ["timestamp", "app", "sign", "client", "userId", "target"]
    assert env["data"] == {"action": "sendToOthers", "payload": {"x": 1}}
    assert verify(md5_config(), APP, meta["timestamp"], meta["sign"], wire.now_ms()) is None


def test_signed_request_hmac_verifies_and_nonces_differ():
    first = wire.signed_request("broadcast", "central", KEY, ["p"], scheme="hmac-sha256")
    second = wire.signed_request("broadcast", "central", KEY, ["p"], scheme="hmac-sha256")
    assert check_envelope(first) == []
    meta = first["meta"]
    assert meta["nonce"] != second["meta"]["nonce"]
    assert "target" not in meta and "client" not in meta
    assert verify(hmac_config(), "central", meta["timestamp"], meta["sign"], wire.now_ms(),
                  meta["nonce"], first["data"]["payload"]) is None


def test_signed_request_unknown_scheme():
    with pytest.raises(ValueError, match="scheme"):
        wire.signed_request("broadcast", APP, KEY, scheme="sha1")


# ---------------------------------------------------------------- configuration


def test_parse_full_config(monkeypatch):
    monkeypatch.setenv("CENTRAL_KEY", SECRET)
    config = parse_gateway_config(
        {
            "signatureApp": {"key": "abc"},
            "centralServiceApp": {"key_env": "CENTRAL_KEY", "scheme": "hmac-sha256",
                                  "handshake_sign": True},
        },
        {"window_seconds": 60, "disconnect_on_deny": False, "http_path": "/push",
         "http_max_body": 1024, "cors": "*", "presence": False},
    )
    assert config.apps == {
        "signatureApp": AppSpec(key="abc"),
        "centralServiceApp": AppSpec(key=SECRET, scheme="hmac-sha256", handshake_sign=True),
    }
    assert (config.window_seconds, config.disconnect_on_deny, config.http_path,
            config.http_max_body, config.cors, config.presence) == (
                60, False, "/push", 1024, "*", False)
    assert config.enabled
    assert GatewayConfig().presence
    with pytest.raises(ValueError, match="gateway.presence: expected True or False"):
        parse_gateway_config({}, {"presence": "off"})


def test_defaults():
    config = parse_gateway_config({}, None)
    assert config == GatewayConfig()
    assert not config.enabled
    assert (config.window_seconds, config.disconnect_on_deny, config.http_path,
            config.http_max_body, config.cors) == (300, True, "/api/transportMessage", 65536, None)
    assert parse_gateway_config(None).apps == {}


def test_cors_forms():
    assert parse_gateway_config({}, {"cors": None}).cors is None
    assert parse_gateway_config({}, {"cors": ["https://a", "https://b"]}).cors == [
        "https://a", "https://b"]
    assert parse_gateway_config({}, {"cors": "https://a"}).cors == ["https://a"]


def test_repr_hides_keys(monkeypatch):
    monkeypatch.setenv("CENTRAL_KEY", SECRET)
    config = parse_gateway_config({"a": {"key": SECRET}, "b": {"key_env": "CENTRAL_KEY"}})
    assert SECRET not in repr(config)
    assert SECRET not in repr(config.apps["a"])
    assert SECRET not in str(config)


@pytest.mark.parametrize(
    "socket_config, gateway, message",
    [
        ("x", None, "socket_config: expected a dict"),
        ({"": {"key": "k"}}, None, "socket_config: app names must be non-empty strings"),
        ({5: {"key": "k"}}, None, "socket_config: app names must be non-empty strings"),
        ({"signatureApp": SECRET}, None, "socket_config.signatureApp: expected a dict"),
        ({"signatureApp": {"key": ""}}, None,
         "socket_config.signatureApp.key: expected a non-empty string"),
        ({"signatureApp": {"key": 12345}}, None,
         "socket_config.signatureApp.key: expected a non-empty string"),
        ({"signatureApp": {}}, None,
         "socket_config.signatureApp: expected exactly one of 'key' or 'key_env'"),
        ({"signatureApp": {"key": SECRET, "key_env": "X"}}, None,
         "socket_config.signatureApp: expected exactly one of 'key' or 'key_env'"),
        ({"signatureApp": {"key": SECRET, "secret": SECRET}}, None,
         "socket_config.signatureApp.secret: unknown key"),
        ({"signatureApp": {"key": SECRET, "scheme": "sha1"}}, None,
         "socket_config.signatureApp.scheme: expected one of md5, hmac-sha256"),
        ({"signatureApp": {"key": SECRET, "handshake_sign": "yes"}}, None,
         "socket_config.signatureApp.handshake_sign: expected True or False"),
        ({"signatureApp": {"key_env": ""}}, None,
         "socket_config.signatureApp.key_env: expected the name of an environment variable"),
        ({}, "x", "gateway: expected a dict"),
        ({}, {"window": 3}, "gateway.window: unknown key"),
        ({}, {"window_seconds": 0}, "gateway.window_seconds: expected a number above 0"),
        ({}, {"window_seconds": True}, "gateway.window_seconds: expected a number above 0"),
        ({}, {"window_seconds": "300"}, "gateway.window_seconds: expected a number above 0"),
        ({}, {"window_seconds": float("inf")}, "gateway.window_seconds: expected a number"),
        ({}, {"disconnect_on_deny": 1}, "gateway.disconnect_on_deny: expected True or False"),
        ({}, {"http_path": "api"}, "gateway.http_path: expected a URL path starting with '/'"),
        ({}, {"http_max_body": 0}, "gateway.http_max_body: expected a number of bytes above 0"),
        ({}, {"http_max_body": 1.5}, "gateway.http_max_body: expected a number of bytes"),
        ({}, {"cors": 3}, "gateway.cors: expected None, '*' or a list of origins"),
        ({}, {"cors": ["https://a", ""]}, "gateway.cors: expected None, '*' or a list"),
    ],
)
def test_config_errors_name_the_path_never_the_secret(socket_config, gateway, message):
    with pytest.raises(ValueError) as info:
        parse_gateway_config(socket_config, gateway)
    text = str(info.value)
    assert text.startswith(message), text
    assert SECRET not in text
    assert "12345" not in text
    assert "\n" not in text


def test_key_env_missing_names_the_variable(monkeypatch):
    monkeypatch.delenv("SIOCTL_TEST_MISSING_KEY", raising=False)
    with pytest.raises(ValueError) as info:
        parse_gateway_config({"centralServiceApp": {"key_env": "SIOCTL_TEST_MISSING_KEY"}})
    assert str(info.value) == (
        "socket_config.centralServiceApp.key_env: environment variable SIOCTL_TEST_MISSING_KEY "
        "is not set or empty"
    )
    monkeypatch.setenv("SIOCTL_TEST_MISSING_KEY", "")
    with pytest.raises(ValueError, match="SIOCTL_TEST_MISSING_KEY"):
        parse_gateway_config({"centralServiceApp": {"key_env": "SIOCTL_TEST_MISSING_KEY"}})


# ---------------------------------------------------------------- validation


def envelope(**meta_overrides):
    meta = {"timestamp": TS, "app": APP, "sign": "s", "client": "c", "userId": "u",
            "target": "t"}
    meta.update(meta_overrides)
    return {"meta": {k: v for k, v in meta.items() if v is not ...},
            "data": {"action": "sendToOthers", "payload": {"any": ["thing"]}}}


def test_check_envelope_well_formed():
    assert check_envelope(envelope()) == []
    minimal = {"meta": {"timestamp": TS, "app": APP, "sign": ""}, "data": {"action": "requestId"}}
    assert check_envelope(minimal) == []
    # null for optional fields counts as absent; unknown keys are ignored.
    assert check_envelope(envelope(client=None, userId=None, extra=[1])) == []


def test_check_envelope_top_level_shapes():
    for value in (None, [], "x", 1, True, 1.5):
        assert check_envelope(value) == ["envelope"]
    assert check_envelope({}) == ["meta", "data"]
    assert check_envelope({"meta": [], "data": "x"}) == ["meta", "data"]
    assert check_envelope({"meta": {"timestamp": TS, "app": APP, "sign": "s"}, "data": {}}) == [
        "data.action"]


def test_check_envelope_field_paths_in_order():
    bad = {"meta": {"timestamp": True, "app": "", "sign": 1, "client": 2, "userId": [],
                    "target": "", "nonce": "n" * 129},
           "data": {"action": "sendToOthers"}}
    assert check_envelope(bad) == [
        "meta.timestamp", "meta.app", "meta.sign", "meta.client", "meta.userId", "meta.target",
        "meta.nonce",
    ]
    assert check_envelope(envelope(timestamp=1.7e12)) == ["meta.timestamp"]
    assert check_envelope(envelope(timestamp="1700000000000")) == ["meta.timestamp"]


def test_target_required_only_for_send_to_others():
    assert check_envelope(envelope(target=...)) == ["meta.target"]
    broadcast = envelope(target=...)
    broadcast["data"]["action"] = "broadcast"
    assert check_envelope(broadcast) == []
    broadcast["meta"]["target"] = 5
    assert check_envelope(broadcast) == ["meta.target"]


def http_body(**overrides):
    body = {"timestamp": TS, "app": APP, "target": "t", "userId": "u", "sign": "s",
            "message": {"hello": 1}}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def test_check_http_body():
    assert check_http_body(http_body()) == []
    assert check_http_body(http_body(userId=..., message=None)) == []
    assert check_http_body(http_body(userId=None, nonce="n")) == []
    for value in (None, [], "x", 1):
        assert check_http_body(value) == ["body"]
    assert check_http_body({}) == ["timestamp", "app", "target", "sign", "message"]
    assert check_http_body(
        http_body(timestamp=False, app=1, target="", userId=3, sign=None, nonce="")
    ) == ["timestamp", "app", "target", "userId", "sign", "nonce"]


# ---------------------------------------------------------------- property tests

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
field_values = json_values | st.sampled_from([TS, APP, "sendToOthers", "0" * 32, "0" * 64])
envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "meta": st.fixed_dictionaries(
            {},
            optional={k: field_values for k in
                      ("timestamp", "app", "sign", "client", "userId", "target", "nonce")},
        ) | json_values,
        "data": st.fixed_dictionaries(
            {}, optional={"action": field_values | st.sampled_from(sorted(wire.ACTIONS)),
                          "payload": json_values},
        ) | json_values,
    },
)
body_like = st.fixed_dictionaries(
    {},
    optional={k: field_values for k in
              ("timestamp", "app", "target", "userId", "sign", "message", "nonce")},
)
CONFIG = parse_gateway_config(
    {APP: {"key": KEY}, "central": {"key": KEY, "scheme": "hmac-sha256"}}
)


@settings(max_examples=1500, deadline=None)
@given(envelope_like | json_values)
def test_check_envelope_never_raises(value):
    failed = check_envelope(value)
    assert isinstance(failed, list) and all(isinstance(f, str) for f in failed)
    if not failed:
        json.dumps(value)  # a well-formed envelope is plain JSON
        assert isinstance(value["meta"]["timestamp"], int)


@settings(max_examples=1500, deadline=None)
@given(body_like | json_values)
def test_check_http_body_never_raises(value):
    failed = check_http_body(value)
    assert isinstance(failed, list) and all(isinstance(f, str) for f in failed)


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from([APP, "central"]) | json_values,
    st.integers(min_value=TS - 400_000, max_value=TS + 400_000) | json_values,
    field_values,
    field_values,
    json_values,
)
def test_verify_never_raises(app, timestamp, sign, nonce, payload):
    reason = verify(CONFIG, app, timestamp, sign, TS, nonce, payload)
    assert reason is None or isinstance(reason, str)
    # Nothing generated here carries a valid signature.
    assert reason is not None


def test_huge_and_deep_inputs():
    deep: dict = {}
    node = deep
    for _ in range(100_000):
        node["meta"] = {}
        node = node["meta"]
    assert check_envelope(deep) == ["meta.timestamp", "meta.app", "meta.sign", "data"]
    big = {"meta": {"timestamp": 10**5000, "app": APP, "sign": "x" * 10**6},
           "data": {"action": "a" * 10**6, "payload": list(range(10**5))}}
    assert check_envelope(big) == []
    assert verify(CONFIG, APP, 10**5000, "x" * 10**6, TS).startswith("timestamp outside")
    assert check_http_body({"timestamp": -(10**5000), "message": deep}) == [
        "app", "target", "sign"]
