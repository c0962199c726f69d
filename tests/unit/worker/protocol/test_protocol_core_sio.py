"""The Socket.IO core of the protocol rules (worker/protocol/core/sio_rules.py, sio_connect.py,
sio_v4.py, nesting.py), in process: no server, no socket; the connect timeout on a fake clock.
The same rules run end to end in tests/contract/test_conformance.py and tests/e2e/test_eio3.py."""

from __future__ import annotations

import pytest
from socketio import packet

from sioctl.worker.protocol.core import nesting, sio_rules, sio_v4
from sioctl.worker.protocol.core.sio_connect import ConnectState
from sioctl.worker.protocol.core.sio_rules import InvalidPacket

Packet = packet.Packet


def decode(data: str | bytes, exempt: tuple[str, ...] = ()) -> Packet:
    return sio_rules.decode_client_packet(data, Packet, exempt)


# ---------------------------------------------------------------------- packet validation
@pytest.mark.parametrize("data", ['0', '0{"token":"1"}', '0/chat,', '1', '2["ev",1]', '31[]',
                                  '2/chat,5["ev"]', '51-["ev",{"_placeholder":true,"num":0}]'])
def test_valid_client_packets(data: str) -> None:
    assert decode(data).packet_type in sio_rules.CLIENT_TYPES


@pytest.mark.parametrize("data", ['2["echo",{"n":1,"f":1.5,"t":"h\u00e9","l":[null,true]}]',
                                  '2/chat,17["ev",-12345678901234567890]', '3/chat,4[]',
                                  '0{"token":"1"}', '2["ev",' + "9" * 101 + "]",
                                  '2\ufeff["ev"]'])
def test_client_packets_decode_as_python_socketio_decodes_them(data: str) -> None:
    """A client packet decodes as python-socketio decodes it, engineio.json's guard against
    huge integers included, into a plain socketio Packet (the same with engineio.json's
    decoder made once: tests/unit/worker/protocol/test_protocol_core_json.py)."""
    try:
        theirs = Packet(encoded_packet=data)
    except ValueError:
        with pytest.raises(InvalidPacket):
            decode(data)
        return
    ours = decode(data)
    assert type(ours) is Packet
    assert (ours.packet_type, ours.namespace, ours.id, ours.data) == \
        (theirs.packet_type, theirs.namespace, theirs.id, theirs.data)


@pytest.mark.parametrize("data, why", [
    ('4{"message":"x"}', "may not be sent by a client"),  # CONNECT_ERROR: the server's
    ('0"token"', "CONNECT payload is not an object"),
    ('2', "EVENT payload is not a non-empty array"),
    ('2[]', "EVENT payload is not a non-empty array"),
    ('2{"a":1}', "EVENT payload is not a non-empty array"),
    ('2[1]', "EVENT name is not a string"),
    ('3[]', "ACK without an id"),
    ('31{"a":1}', "ACK payload is not an array"),
    ('2["ev"', "undecodable"),
    ('9', "type 9 may not be sent by a client"),
    ('5["ev"]', "binary packet without attachments"),
    ('50-["ev"]', "binary packet without attachments"),
    ('52-["ev",{"_placeholder":true,"num":0}]', "attachment count does not match"),
    ('51-["ev",{"_placeholder":true,"num":"0"}]', "attachment count does not match"),
])
def test_invalid_client_packets_say_why(data: str, why: str) -> None:
    with pytest.raises(InvalidPacket, match=why):
        decode(data)


def test_what_is_no_socketio_packet_at_all() -> None:
    with pytest.raises(InvalidPacket, match="binary attachment without a binary packet"):
        decode(b"\x00")
    with pytest.raises(InvalidPacket, match="not a Socket.IO packet"):
        sio_rules.decode_client_packet(42, Packet)


def test_binary_packet_notes_its_header_size() -> None:
    data = '51-["ev",{"_placeholder":true,"num":0}]'
    assert decode(data).sioctl_bytes == len(data)


def test_deep_arguments_are_refused_unless_the_event_checks_them() -> None:
    deep = "[" * (nesting.MAX_DEPTH + 1) + "]" * (nesting.MAX_DEPTH + 1)
    with pytest.raises(InvalidPacket, match="nested deeper"):
        decode(f'2["ev",{deep}]')
    assert decode(f'2["checked",{deep}]', exempt=("checked",)).data[0] == "checked"
    shallow = "[" * 10 + "]" * 10
    assert decode(f'31[{shallow}]').id == 1


def test_attachments_count_toward_the_packets_budget() -> None:
    pending = decode('51-["ev",{"_placeholder":true,"num":0}]')
    header = pending.sioctl_bytes
    assert sio_rules.count_attachment(pending, b"x" * 10, Packet, limit=header + 10) \
        == header + 10
    with pytest.raises(InvalidPacket, match="larger than max_http_buffer_size"):
        sio_rules.count_attachment(pending, b"x" * 11, Packet, limit=header + 10)
    with pytest.raises(InvalidPacket, match="text packet where a binary attachment was due"):
        sio_rules.count_attachment(pending, "text", Packet, limit=10**6)


def test_namespace_served_and_the_refusal_payload() -> None:
    served = sio_rules.namespace_served
    assert served("/", {"/": {}}, {}, None)
    assert served("/chat", {}, {"/chat": object()}, None)
    assert served("/any", {}, {}, "*")
    assert served("/listed", {}, {}, ["/listed"])
    assert not served("/other", {"/": {}}, {}, ["/listed"])
    assert sio_rules.connect_error_data() == {"message": "Invalid namespace"}


def test_nesting_without_recursion() -> None:
    assert not nesting.deeper_than([[1]], limit=2)
    assert nesting.deeper_than([[[1]]], limit=2)
    assert nesting.deeper_than({"a": [{"b": []}]}, limit=3)
    assert not nesting.deeper_than("[[[[", limit=1)
    assert not nesting.text_may_nest_deeper("[[]]", limit=2)
    assert nesting.text_may_nest_deeper(b"[[{", limit=2)


# ---------------------------------------------------------------------- CONNECT first, on time
def test_connect_first_rule() -> None:
    state = ConnectState(connect_timeout=45)
    with pytest.raises(InvalidPacket, match="first packet is not a CONNECT"):
        state.packet_arrives("a", packet.EVENT)
    state.packet_arrives("a", packet.CONNECT)
    state.packet_arrives("a", packet.EVENT)  # anything once connected
    state.session_closes("a")
    with pytest.raises(InvalidPacket):
        state.packet_arrives("a", packet.EVENT)


def test_connect_timeout_on_a_fake_clock() -> None:
    state = ConnectState(connect_timeout=10)
    assert state.session_opens("a", now=100.0)  # the first: start the sweep
    assert not state.session_opens("b", now=101.0)  # one sweep per server
    assert not state.session_opens("c", now=102.0)
    state.packet_arrives("b", packet.CONNECT)
    open_sessions = {"a", "b"}  # c has gone without a word
    assert state.overdue(109.9, open_sessions) == []
    assert "c" not in state.awaiting  # forgotten: no longer open
    assert state.overdue(110.0, open_sessions) == ["a"]
    assert state.overdue(200.0, open_sessions) == []  # each is closed once
    assert state.awaiting == {}
    assert state.overdue_reason() == "no CONNECT packet within 10 s"
    assert state.sweep_pause() == 1.0
    assert ConnectState(connect_timeout=0.5).sweep_pause() == 0.25


def test_no_deadline_when_the_timeout_is_off() -> None:
    state = ConnectState(connect_timeout=0)
    assert not state.session_opens("a", now=0.0)
    assert state.awaiting == {}
    with pytest.raises(InvalidPacket):  # CONNECT first still holds
        state.packet_arrives("a", packet.EVENT)


def test_implicit_connect_of_a_v2_client_keeps_its_deadline_until_it_is_accepted() -> None:
    state = ConnectState(connect_timeout=10)
    state.session_opens("accepted", now=0.0)
    state.session_opens("refused", now=0.0)
    state.implicit_connect("accepted")
    state.implicit_connect("refused")
    state.connect_refused("refused")
    assert state.overdue(10.0, {"accepted", "refused"}) == ["refused"]
    state.packet_arrives("accepted", packet.EVENT)


# ---------------------------------------------------------------------- Socket.IO protocol v4
def test_v4_outgoing_rewrites() -> None:
    connect = sio_v4.outgoing(Packet(packet.CONNECT, {"sid": "x"}, namespace="/chat"), Packet)
    assert connect.encode() == "0/chat,"
    error = sio_v4.outgoing(Packet(packet.CONNECT_ERROR, {"message": "no"}), Packet)
    assert error.data == "no"
    error = sio_v4.outgoing(Packet(packet.CONNECT_ERROR, {"message": "no", "data": {"a": 1}}),
                            Packet)
    assert error.data == {"a": 1}
    disconnect = sio_v4.outgoing(Packet(packet.DISCONNECT, {"reason": "x"}), Packet)
    assert disconnect.data is None
    event = Packet(packet.EVENT, ["ev"])
    assert sio_v4.outgoing(event, Packet) is event


def test_v4_connect_query_becomes_the_auth_payload() -> None:
    assert sio_v4.incoming_connect("0/chat?token=abc,") == '0/chat,{"token":"abc"}'
    assert sio_v4.incoming_connect("0/chat,") == "0/chat,"
    assert sio_v4.incoming_connect('2["ev"]') == '2["ev"]'
