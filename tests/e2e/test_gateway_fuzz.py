"""Property tests: thousands of generated envelopes and HTTP bodies against one running cluster.

One `sioctl start --sticky` cluster (2 workers, tests/apps/gwapp, env "lenient": a refused
request is answered but the socket stays connected) serves both tests. Every generated
``requestMessage`` must be acknowledged (a deny or a success) and every generated
``POST /api/transportMessage`` answered with JSON and a 200/401/404/413/422 status; afterwards
the same clients are still served. Generation is derandomized so CI sees the same inputs.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sioctl.worker.gateway.wire import (
    ACTIONS,
    BROADCAST,
    DENY,
    RE_CONNECT_AND_UPDATES,
    RE_CONNECT_UPDATED,
    REQUEST_ID,
    REQUEST_MESSAGE,
    SAVE_ID,
    SEND_TO_OTHERS,
    now_ms,
    sign,
    sign_hmac,
    signed_request,
)
from tests.support.clients import BoundClient, bound_session, ips_for_slot, make_client
from tests.support.cluster import Cluster
from tests.support.paths import APPS_DIR

APP_DIR = APPS_DIR / "gwapp"
WORKERS = 2
CENTRAL_KEY = "central-fuzz-" + secrets.token_hex(8)
KEYS = {"signatureApp": "signature-app-key", "centralServiceApp": CENTRAL_KEY,
        "hmacApp": "hmac-app-key"}
HMAC_APP = "hmacApp"
WINDOW_MS = 300_000
HTTP_MAX_BODY = 4096
HTTP_PATH = "/api/transportMessage"
HTTP_STATUSES = {200, 401, 404, 413, 422}
EXAMPLES = 1500
TIMEOUT = 10.0
# Placeholders a strategy may use as a target; the test puts the live client's ids there.
TARGET_SID, TARGET_USER = "@target-sid", "@target-user"
CLIENT_ACTIONS = (REQUEST_ID, SEND_TO_OTHERS, RE_CONNECT_AND_UPDATES, BROADCAST)

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------- strategies

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
# Repeated branches weigh more: mostly known apps, actions clients may send, fresh timestamps.
known_apps = st.sampled_from(sorted(KEYS))
apps = st.one_of(known_apps, known_apps, known_apps, st.text(max_size=12))
client_actions = st.sampled_from(sorted(CLIENT_ACTIONS))
actions = st.one_of(client_actions, client_actions, st.sampled_from(sorted(ACTIONS)),
                    st.text(max_size=12))
offsets = st.one_of(
    st.just(0),
    st.integers(-WINDOW_MS + 1000, WINDOW_MS - 1000),
    st.integers(-WINDOW_MS + 1000, WINDOW_MS - 1000),
    st.sampled_from([-WINDOW_MS - 1000, WINDOW_MS + 1000]),
    st.integers(),
)
# Well-typed values: a wrong type comes from _mutate, one field at a time.
targets = st.sampled_from([TARGET_SID, TARGET_USER]) | st.text(min_size=1, max_size=24)
optional_texts = st.none() | st.text(max_size=24)
nonces = st.builds(lambda: secrets.token_hex(8)) | st.none() | st.text(max_size=140)


def _signature(draw: Any, app: Any, timestamp: int, nonce: Any, payload: Any) -> Any:
    """A correct signature, one made with the wrong key, or anything at all."""
    how = draw(st.sampled_from(["good", "good", "good", "wrong-key", "random"]))
    if how == "random" or not isinstance(app, str):
        return draw(st.text(max_size=70) | json_values)
    key = KEYS.get(app, "no-such-key") if how == "good" else "wrong-key"
    if app == HMAC_APP and isinstance(nonce, str):
        try:
            return sign_hmac(app, key, timestamp, nonce, payload)
        except (TypeError, ValueError):
            return "0" * 64
    return sign(app, key, timestamp)


def _mutate(draw: Any, obj: dict[str, Any], paths: list[tuple[str, ...]]) -> None:
    """Sometimes delete or replace one field (a path into ``obj``) with any JSON value."""
    what = draw(st.sampled_from(["keep", "keep", "keep", "delete", "replace"]))
    if what == "keep":
        return
    path = draw(st.sampled_from(paths))
    parent = obj
    for name in path[:-1]:
        parent = parent[name]
    if what == "delete":
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = draw(json_values)


@st.composite
def near_envelopes(draw: Any) -> dict[str, Any]:
    """A requestMessage envelope close to a valid one (often exactly valid)."""
    app = draw(apps)
    timestamp = now_ms() + draw(offsets)
    payload = draw(json_values)
    nonce = draw(nonces)
    meta: dict[str, Any] = {"timestamp": timestamp, "app": app,
                            "sign": _signature(draw, app, timestamp, nonce, payload)}
    for name, values in (("client", optional_texts), ("userId", optional_texts),
                         ("target", targets)):
        if draw(st.booleans()):
            meta[name] = draw(values)
    if nonce is not None:
        meta["nonce"] = nonce
    envelope = {"meta": meta, "data": {"action": draw(actions), "payload": payload}}
    paths = [("meta",), ("data",), ("meta", "timestamp"), ("meta", "app"), ("meta", "sign"),
             ("meta", "target"), ("meta", "client"), ("meta", "userId"), ("meta", "nonce"),
             ("data", "action"), ("data", "payload")]
    _mutate(draw, envelope, paths)
    return envelope


# Repeated branches weigh more: most envelopes are near-valid.
envelopes = st.one_of(
    near_envelopes(),
    near_envelopes(),
    near_envelopes(),
    json_values,
    st.fixed_dictionaries({"meta": json_values, "data": json_values}),
)


@st.composite
def near_http_bodies(draw: Any) -> bytes:
    """A transportMessage body close to a valid one, as JSON bytes."""
    app = draw(apps)
    timestamp = now_ms() + draw(offsets)
    message = draw(json_values)
    nonce = draw(nonces)
    body: dict[str, Any] = {
        "timestamp": timestamp, "app": app, "target": draw(targets),
        "sign": _signature(draw, app, timestamp, nonce, message), "message": message,
    }
    if draw(st.booleans()):
        body["userId"] = draw(optional_texts)
    if nonce is not None:
        body["nonce"] = nonce
    _mutate(draw, body, [(name,) for name in ("timestamp", "app", "target", "sign", "message",
                                              "userId", "nonce")])
    return json.dumps(body).encode()


http_bodies = st.one_of(
    near_http_bodies(),
    near_http_bodies(),
    near_http_bodies(),
    st.binary(max_size=256),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.integers(HTTP_MAX_BODY - 8, HTTP_MAX_BODY + 64).map(
        lambda n: json.dumps({"message": "x" * n}).encode()
    ),
)


def _with_targets(value: Any, sid: str, user_id: str) -> Any:
    """``value`` with the target placeholders replaced by the live client's ids."""
    if value == TARGET_SID:
        return sid
    if value == TARGET_USER:
        return user_id
    if isinstance(value, dict):
        return {k: _with_targets(v, sid, user_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_targets(v, sid, user_id) for v in value]
    return value


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cluster(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One lenient 2-worker gwapp cluster for the whole module."""
    running = Cluster(str(APP_DIR), WORKERS, redis_url, ["--env", "lenient"],
                      {"GWAPP_CENTRAL_KEY": CENTRAL_KEY}, tmp_path_factory.mktemp("gwfuzz"))
    try:
        running.start()
        yield running
    finally:
        survivors = running.stop()
    assert not survivors, f"worker processes outlived their master: {survivors}"


@pytest.fixture(scope="module")
def target(cluster: Cluster) -> Iterator[tuple[BoundClient, dict[str, Any]]]:
    """A client on worker 1 that generated messages may reach: (client, its saveId payload)."""
    saved: list[Any] = []
    client = make_client(ips_for_slot(1, WORKERS)[0], reconnection=False)
    inbox = client.record("responseMessage")
    client.connect(cluster.url)
    try:
        saved.append(inbox.get(timeout=TIMEOUT))
        assert saved[0]["data"]["action"] == SAVE_ID
        yield client, saved[0]["data"]["payload"]
    finally:
        client.shutdown()


def _assert_served(client: BoundClient) -> None:
    """A valid requestId still gets its saveId."""
    ack = client.call(REQUEST_MESSAGE, signed_request(REQUEST_ID, "signatureApp",
                                                      KEYS["signatureApp"]), timeout=TIMEOUT)
    assert ack["data"]["action"] == SAVE_ID, ack


# --------------------------------------------------------------------------------- tests


def test_generated_envelopes_are_all_answered(
    cluster: Cluster, target: tuple[BoundClient, dict[str, Any]]
) -> None:
    receiver, ids = target
    sender = make_client(ips_for_slot(0, WORKERS)[0], reconnection=False)
    sender.connect(cluster.url)
    answered: dict[str, int] = {}
    try:

        @FUZZ_SETTINGS
        @given(envelope=envelopes)
        def send(envelope: Any) -> None:
            envelope = _with_targets(envelope, ids["socketId"], ids["userId"])
            ack = sender.call(REQUEST_MESSAGE, envelope, timeout=TIMEOUT)
            assert isinstance(ack, dict), f"ack {ack!r} for {envelope!r}"
            if ack.get("success") is True:
                assert ack["status"] == 200, ack
                kind = "success"
            else:
                kind = ack["data"]["action"]
                assert kind in (DENY, SAVE_ID, RE_CONNECT_UPDATED), ack
                if kind == DENY:
                    assert isinstance(ack["data"]["payload"]["reason"], str), ack
            answered[kind] = answered.get(kind, 0) + 1
            assert sender.connected

        send()
        # The mix reached the dispatcher, not only the validation.
        assert answered.get(DENY, 0) > 0 and sum(answered.values()) - answered[DENY] > 0, (
            answered)
        _assert_served(sender)
        _assert_served(receiver)
    finally:
        sender.shutdown()


def test_generated_http_bodies_are_all_answered(
    cluster: Cluster, target: tuple[BoundClient, dict[str, Any]]
) -> None:
    receiver, ids = target
    url = cluster.url + HTTP_PATH
    http = bound_session(ips_for_slot(0, WORKERS, [f"127.0.0.{i}" for i in range(20, 40)])[0])
    statuses: dict[int, int] = {}

    @FUZZ_SETTINGS
    @given(body=http_bodies)
    def post(body: bytes) -> None:
        body = body.replace(TARGET_SID.encode(), ids["socketId"].encode()).replace(
            TARGET_USER.encode(), ids["userId"].encode())
        reply = http.post(url, data=body, timeout=TIMEOUT,
                          headers={"Content-Type": "application/json"})
        assert reply.status_code in HTTP_STATUSES, (reply.status_code, reply.text, body)
        answer = reply.json()
        assert answer["status"] == reply.status_code, answer
        assert answer["success"] is (reply.status_code == 200), answer
        statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1

    post()
    assert set(statuses) == HTTP_STATUSES, statuses
    _assert_served(receiver)
