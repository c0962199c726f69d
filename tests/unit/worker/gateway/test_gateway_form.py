"""How POST /api/transportMessage reads a body by its Content-Type (worker/gateway/form.py)."""

from __future__ import annotations

import pytest

from sioctl.worker.gateway import form, rules, wire
from sioctl.worker.gateway.config import parse_gateway_config


@pytest.mark.parametrize("content_type, kind", [
    (None, form.JSON), ("", form.JSON), ("application/json", form.JSON),
    ("Application/JSON; charset=utf-8", form.JSON), ("application/vnd.api+json", form.JSON),
    ("application/x-www-form-urlencoded", form.FORM),
    ("application/x-www-form-urlencoded; charset=UTF-8", form.FORM),
    ("text/plain", None), ("multipart/form-data; boundary=x", None), ("text/json", None),
])
def test_body_kind(content_type: str | None, kind: str | None) -> None:
    assert form.body_kind(content_type) == kind


def test_form_fields_are_the_body_and_the_timestamp_an_int() -> None:
    raw = b"timestamp=1543469988762&app=signatureApp&target=abc&sign=s&message=hello+there"
    assert form.parse_form(raw) == {"timestamp": 1543469988762, "app": "signatureApp",
                                    "target": "abc", "sign": "s", "message": "hello there"}
    # Not digits: stays text, for the body check to name it.
    assert form.parse_form(b"timestamp=-5")["timestamp"] == "-5"
    assert form.parse_form(b"message=")["message"] == ""


def test_bracket_notation_builds_objects_and_lists() -> None:
    raw = (b"message%5Bmsg%5D=hi&message[tags][]=a&message[tags][]=b&message[a][b][c]=d")
    assert form.parse_form(raw)["message"] == {"msg": "hi", "tags": ["a", "b"],
                                               "a": {"b": {"c": "d"}}}


@pytest.mark.parametrize("raw, field", [
    (b"app=a&app=b", "app"),
    (b"message=x&message[a]=y", "message"),
    (b"message[a]=y&message=x", "message"),
    (b"message[]=x&message[a]=y", "message"),
    (b"message[][a]=x", "message"),
    (b"message[1][2][3][4][5][6]=x", "message"),
    (b"[a]=x", "[a]"),
])
def test_forms_no_body_comes_from(raw: bytes, field: str) -> None:
    with pytest.raises(form.FormError) as caught:
        form.parse_form(raw)
    assert caught.value.field == field


def test_json_sent_as_a_form_is_read_as_json() -> None:
    assert form.parse_form(b' {"app": "x", "timestamp": 1}') == {"app": "x", "timestamp": 1}
    with pytest.raises(ValueError):
        form.parse_form(b"{not json")


def test_check_http_message_reads_a_form() -> None:
    config = parse_gateway_config({"signatureApp": {"key": "k"}})
    ts = wire.now_ms()
    raw = (f"timestamp={ts}&app=signatureApp&target=t&sign={wire.sign('signatureApp', 'k', ts)}"
           f"&message[x]=1").encode()
    body = rules.check_http_message(config, raw, ts, form.FORM)
    assert body["message"] == {"x": "1"} and body["timestamp"] == ts
    with pytest.raises(rules.Refused) as caught:
        rules.check_http_message(config, b"app=a&app=b", ts, form.FORM)
    assert (caught.value.status, caught.value.fields) == (422, ["app"])
    with pytest.raises(rules.Refused) as caught:
        rules.check_http_message(config, raw, ts, form.JSON)
    assert (caught.value.status, caught.value.fields) == (422, ["body"])
