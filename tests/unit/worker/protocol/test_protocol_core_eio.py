"""The Engine.IO core of the protocol rules (worker/protocol/core/eio_rules.py, eio_session.py,
eio3_rules.py), in process: no server, no socket, no green thread; state machines on a fake
clock. The same rules run end to end in tests/contract/test_conformance.py and
tests/e2e/test_eio3.py."""

from __future__ import annotations

import pytest
from engineio import exceptions, packet

from sioctl.worker.protocol.core import eio3_rules, eio_rules
from sioctl.worker.protocol.core.eio_rules import DuplicateRequest, InvalidPacket
from sioctl.worker.protocol.core.eio_session import (
    SessionRules,
    advertised_ping_interval,
    advertises_ping_interval,
)


# ---------------------------------------------------------------------- packets and payloads
@pytest.mark.parametrize("encoded", ["", "x", "bé", "b!!!"])
def test_decode_packet_refuses_what_is_no_engineio_packet(encoded: str) -> None:
    with pytest.raises(InvalidPacket):
        eio_rules.decode_packet(encoded)


def test_decode_packet_reads_text_and_strict_base64() -> None:
    assert eio_rules.decode_packet("4hello").data == "hello"
    assert eio_rules.decode_packet("bAQI=").data == b"\x01\x02"
    with pytest.raises(InvalidPacket, match="base64"):
        eio_rules.decode_packet("bAQ I=")  # python-engineio would skip the space


def test_payload_splits_on_record_separator_without_a_packet_limit() -> None:
    body = "\x1e".join(["4a"] * 40)  # python-engineio refuses more than 16
    packets = eio_rules.decode_payload(body)
    assert [p.data for p in packets] == ["a"] * 40


@pytest.mark.parametrize("body, why", [
    ("", "empty payload"),
    ("4a\x1e2", "type 2 may not be sent"),  # PING: server to client since v4
    ("4a\x1e0", "type 0 may not be sent"),
    ("4a\x1e6", "type 6 may not be sent"),
    ("4a\x1ex", "not an Engine.IO packet"),
])
def test_payload_refuses_empty_bodies_and_server_only_packets(body: str, why: str) -> None:
    with pytest.raises(InvalidPacket, match=why):
        eio_rules.decode_payload(body)


def test_post_body_must_be_utf8() -> None:
    assert [p.data for p in eio_rules.decode_post_body("4é".encode())] == ["é"]
    with pytest.raises(InvalidPacket, match="UTF-8"):
        eio_rules.decode_post_body(b"4\xff")


def test_websocket_frames_a_client_may_send() -> None:
    for frame in ("1", "3", "4x", "5", b"\x00raw"):
        assert eio_rules.check_websocket_frame(frame, upgrading=False) == frame
    # PING only as the probe of an upgrade under way.
    assert eio_rules.check_websocket_frame("2probe", upgrading=True) == "2probe"
    for frame, upgrading in (("2probe", False), ("2other", True), ("0", True), ("6", False)):
        with pytest.raises(InvalidPacket, match="may not be sent here"):
            eio_rules.check_websocket_frame(frame, upgrading)


# ---------------------------------------------------------------------- POST bodies
def test_body_read_size_by_content_length_or_chunked() -> None:
    assert eio_rules.body_read_size(False, "10", limit=100) == 10
    assert eio_rules.body_read_size(False, None, limit=100) == 0
    assert eio_rules.body_read_size(False, "100", limit=100) == 100
    # Chunked: one byte more than allowed tells an oversized body once read.
    assert eio_rules.body_read_size(True, "junk", limit=100) == 101


def test_body_over_the_limit_is_refused_before_and_after_reading() -> None:
    with pytest.raises(exceptions.ContentTooLongError):
        eio_rules.body_read_size(False, "101", limit=100)
    with pytest.raises(InvalidPacket, match="Content-Length"):
        eio_rules.body_read_size(False, "ten", limit=100)
    eio_rules.check_body_size(100, 100)
    with pytest.raises(exceptions.ContentTooLongError):
        eio_rules.check_body_size(101, 100)


def test_oversized_post_is_413_and_other_statuses_stay() -> None:
    assert eio_rules.response_status("400 BAD REQUEST", too_large=True) == "413 Payload Too Large"
    assert eio_rules.response_status("400 BAD REQUEST", too_large=False) == "400 BAD REQUEST"
    assert eio_rules.POST_OK_BODY == b"ok"


# ---------------------------------------------------------------------- requests
@pytest.mark.parametrize("method, query, problem", [
    ("PUT", {"transport": ["polling"]}, "Unsupported method PUT"),
    ("DELETE", {}, "Unsupported method DELETE"),
    ("GET", {"EIO": ["4"]}, "Missing transport"),
    ("POST", {"transport": ["polling"]}, "Missing sid"),
    ("GET", {"transport": ["polling"]}, None),
    ("POST", {"transport": ["polling"], "sid": ["x"]}, None),
    ("OPTIONS", {}, None),  # a CORS preflight carries no Engine.IO query
])
def test_request_problem(method: str, query: dict[str, list[str]], problem: str | None) -> None:
    assert eio_rules.request_problem(method, query) == problem


def test_query_sid() -> None:
    assert eio_rules.query_sid("EIO=4&transport=polling&sid=abc") == "abc"
    assert eio_rules.query_sid("EIO=4&transport=polling") is None
    assert eio_rules.query_sid("sid=") is None


def test_is_websocket_upgrade() -> None:
    assert eio_rules.is_websocket_upgrade(
        {"HTTP_CONNECTION": "keep-alive, Upgrade", "HTTP_UPGRADE": "WebSocket"})
    assert not eio_rules.is_websocket_upgrade({"HTTP_CONNECTION": "Upgrade"})
    assert not eio_rules.is_websocket_upgrade({"HTTP_UPGRADE": "websocket"})


def test_route_request_for_an_open_session() -> None:
    route = eio_rules.route_request
    # A second websocket, once the session has one (upgrading or upgraded): accepted, closed.
    assert route(True, upgraded=True, upgrading=False) == eio_rules.CLOSE_SECOND_WEBSOCKET
    assert route(True, upgraded=False, upgrading=True) == eio_rules.CLOSE_SECOND_WEBSOCKET
    assert route(True, upgraded=False, upgrading=False) == eio_rules.PASS
    # A poll waits for an upgrade under way (the session's rules say whether one is).
    assert route(False, upgraded=False, upgrading=True) == eio_rules.WAIT_FOR_UPGRADE


def test_sweep_decisions() -> None:
    assert eio_rules.sweep_pause(20, 0) is None
    assert eio_rules.sweep_pause(20, 4) == 5.0
    assert eio_rules.sweep_action(closed=True, closing=True) == eio_rules.FORGET
    assert eio_rules.sweep_action(closed=False, closing=True) == eio_rules.SKIP
    assert eio_rules.sweep_action(closed=False, closing=False) == eio_rules.CHECK_PING


# ---------------------------------------------------------------------- one session's state
def test_one_active_get_and_post_at_a_time() -> None:
    rules = SessionRules()
    rules.begin_get()
    with pytest.raises(DuplicateRequest, match="GET"):
        rules.begin_get()
    rules.begin_post()  # a POST beside the GET is allowed
    with pytest.raises(DuplicateRequest, match="POST"):
        rules.begin_post()
    rules.end_post()
    rules.begin_post()
    rules.end_post()
    assert rules.end_get([]) == []
    rules.begin_get()
    rules.abort_get()
    rules.begin_get()  # ended either way


def test_poll_ended_by_the_clients_close_gets_a_noop() -> None:
    rules = SessionRules()
    rules.begin_get()
    rules.received(packet.MESSAGE)
    assert rules.end_get([]) == []
    rules.begin_get()
    rules.received(packet.CLOSE)
    answer = rules.end_get([])
    assert [p.packet_type for p in answer] == [packet.NOOP]
    ping = packet.Packet(packet.PING)
    rules.begin_get()
    assert rules.end_get([ping]) == [ping]  # packets to send go out as they are


def test_upgrade_under_way_until_it_settles() -> None:
    rules = SessionRules()
    # A websocket-only session (not connected yet) is no upgrade: polls never wait.
    assert not rules.websocket_opens(connected=False, upgraded=False)
    assert not rules.upgrade_pending
    assert not rules.websocket_opens(connected=True, upgraded=True)
    assert rules.websocket_opens(connected=True, upgraded=False)
    assert rules.upgrade_pending
    assert rules.upgrade_settles()
    assert not rules.upgrade_pending
    assert not rules.upgrade_settles()  # settling twice wakes nobody twice


def test_ping_cycle_on_a_fake_clock() -> None:
    rules = SessionRules()
    # python-engineio's rule: no new cycle while one waits (last_ping cleared).
    assert rules.schedule_ping(cycle_done=False, now=100.0, interval=25) is None
    assert rules.ping_due is None
    assert rules.schedule_ping(cycle_done=True, now=100.0, interval=25) == 125.0
    assert rules.ping_due == 125.0
    assert rules.ping_fires(closing=False)
    assert rules.ping_due is None
    assert rules.schedule_ping(cycle_done=True, now=150.0, interval=25) == 175.0
    assert not rules.ping_fires(closing=True)  # a closing session gets no ping
    assert not rules.cancel_ping()
    rules.schedule_ping(cycle_done=True, now=200.0, interval=25)
    assert rules.cancel_ping()  # the shell cancels its timer
    assert rules.ping_due is None


def test_advertised_ping_interval_rounds_fractions() -> None:
    assert advertised_ping_interval(0.3, 0) == 300  # python-engineio advertised 0
    assert advertised_ping_interval(25, 5) == 30000
    assert advertised_ping_interval(0.0015, 0) == 2
    opening = packet.Packet(packet.OPEN, {"sid": "x", "pingInterval": 0})
    assert advertises_ping_interval(opening)
    assert not advertises_ping_interval(packet.Packet(packet.OPEN, {"sid": "x"}))
    assert not advertises_ping_interval(packet.Packet(packet.MESSAGE, {"pingInterval": 1}))
    assert not advertises_ping_interval("anything else")


# ---------------------------------------------------------------------- Engine.IO 3
def test_eio3_door() -> None:
    assert eio3_rules.wants_eio3({"EIO": ["3"], "transport": ["polling"]})
    assert not eio3_rules.wants_eio3({"EIO": ["3"], "sid": ["x"]})  # an open session
    assert not eio3_rules.wants_eio3({"EIO": ["4"]})
    assert eio3_rules.as_eio4_query(
        {"EIO": ["3"], "transport": ["polling"], "b64": ["1"]}
    ) == "EIO=4&transport=polling&b64=1"
    assert eio3_rules.binary_as_base64({"b64": ["1"]}, jsonp=False) == (True, True)
    assert eio3_rules.binary_as_base64({}, jsonp=True) == (True, False)
    assert eio3_rules.binary_as_base64({}, jsonp=False) == (False, False)


def test_eio3_open_answers_and_heartbeat() -> None:
    data = {"sid": "x", "upgrades": [], "pingInterval": 1, "pingTimeout": 2, "maxPayload": 3}
    assert eio3_rules.open_data(data) == {
        "sid": "x", "upgrades": [], "pingInterval": 1, "pingTimeout": 2}
    pong = eio3_rules.answer_to(packet.Packet(packet.PING, "probe"))
    assert pong is not None and (pong.packet_type, pong.data) == (packet.PONG, "probe")
    assert eio3_rules.answer_to(packet.Packet(packet.MESSAGE, "x")) is None
    # Silent for more than pingInterval + pingTimeout (fake clock, seconds).
    assert not eio3_rules.silent_too_long(now=130.0, last_received=100.0, interval_ms=25000,
                                          ping_timeout=5)
    assert eio3_rules.silent_too_long(now=130.1, last_received=100.0, interval_ms=25000,
                                      ping_timeout=5)


def test_eio3_frames_and_posts() -> None:
    assert eio3_rules.check_websocket_frame(b"\x04raw") == b"raw"
    assert eio3_rules.check_websocket_frame("b4AQI=") == b"\x01\x02"
    assert eio3_rules.check_websocket_frame("2probe") == "2probe"  # v3 clients ping
    with pytest.raises(InvalidPacket):
        eio3_rules.check_websocket_frame("3")  # a pong: the server's to send
    assert [p.packet_type for p in eio3_rules.decode_post_body(b"1:2", "text/plain", False)] \
        == [packet.PING]
    with pytest.raises(InvalidPacket, match="may not be sent by a client"):
        eio3_rules.decode_post_body(b"1:3", "text/plain", False)
    assert eio3_rules.jsonp_index({"j": ["2"]}) == 2
    assert eio3_rules.jsonp_index({"j": ["x"]}) is None
    assert eio3_rules.jsonp_index({}) is None


def test_eio3_polling_response_and_packet_encoding() -> None:
    response = eio3_rules.polling_response([packet.Packet(packet.MESSAGE, "hi")], b64=False,
                                           jsonp=None, headers=[("X", "1")])
    assert response["status"] == "200 OK"
    assert response["response"] == b"3:4hi"
    assert response["headers"][0] == ("X", "1")

    class Session:
        websocket_b64 = False

    session = Session()
    binary = eio3_rules.Eio3Packet(packet.Packet(packet.MESSAGE, b"\x01"), session)
    assert binary.encode() == b"\x04\x01"
    session.websocket_b64 = True  # read when the writer encodes, not when queued
    assert binary.encode() == "b4AQ=="
