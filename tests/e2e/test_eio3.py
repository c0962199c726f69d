"""Engine.IO protocol 3 / Socket.IO protocol v4 (Socket.IO v2 clients) over the raw wire, through
``sioctl start --sticky --allow-eio3`` with 2 workers.

Written from socketio/socket.io docs/engine.io-protocol/v3.md and docs/socket.io-protocol/v4.md
(sections named in the docstrings as "v3 > ..." and "v4 > ..."), not through a client library;
tests/e2e/test_js_client_v2.py runs the real socket.io-client@2. Each session comes from a
127.0.0.x address the master serves from a chosen worker, and the tests cover both slots.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket

from sioctl.worker.protocol.core import eio3_payload
from tests.support.clients import bound_session, ips_for_slot
from tests.support.cluster import Cluster, app_on, module_cluster

WORKERS = 2
SLOTS = list(range(WORKERS))
TIMEOUT = 5.0
_LENGTH = re.compile(r"(\d+):")


def _cluster(app: str, redis_url: str, factory: pytest.TempPathFactory,
             *args: str) -> Iterator[Cluster]:
    yield from module_cluster(app, WORKERS, redis_url, factory.mktemp("eio3"), *args)


@pytest.fixture(scope="module")
def chat(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
         module_engine: str) -> Iterator[Cluster]:
    """The chat app serving EIO=3 too."""
    yield from _cluster(app_on(module_engine, "tests.apps.chat:sio"),
                        redis_url, tmp_path_factory, "--allow-eio3")


@pytest.fixture(scope="module")
def fastping(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
         module_engine: str) -> Iterator[Cluster]:
    """An app with a 0.3 s ping interval and a 1 s ping timeout, serving EIO=3 too."""
    yield from _cluster(app_on(module_engine, "tests.apps.fastping:sio"),
                        redis_url, tmp_path_factory, "--allow-eio3")


@pytest.fixture(scope="module")
def v4_only(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
         module_engine: str) -> Iterator[Cluster]:
    """The chat app as started without --allow-eio3."""
    yield from _cluster(app_on(module_engine, "tests.apps.chat:sio"),
                        redis_url, tmp_path_factory)


def ip(slot: int, index: int = 0) -> str:
    candidates = ips_for_slot(slot, WORKERS)
    return candidates[index % len(candidates)]


def split_text_payload(body: str) -> list[str]:
    """The packets of a v3 text payload, checking that each length counts UTF-16 units."""
    packets = []
    while body:
        match = _LENGTH.match(body)
        assert match, f"not a v3 payload: {body!r}"
        length = int(match.group(1))
        rest = body[match.end():]
        taken, units = 0, 0
        while units < length:
            units += 2 if ord(rest[taken]) > 0xFFFF else 1
            taken += 1
        assert units == length, body
        packets.append(rest[:taken])
        body = rest[taken:]
    return packets


class Polling3:
    """A raw EIO=3 long-polling client from one source address."""

    def __init__(self, cluster: Cluster, source_ip: str, extra: str = "") -> None:
        self.base = f"{cluster.url}/socket.io/"
        self.http = bound_session(source_ip)
        self.extra = extra
        self.sid = ""

    def query(self) -> str:
        query = f"EIO=3&transport=polling&sid={self.sid}"
        return f"{query}&{self.extra}" if self.extra else query

    def get(self, query: str) -> requests.Response:
        return self.http.get(f"{self.base}?{query}", timeout=TIMEOUT)

    def post(self, body: str | bytes, content_type: str = "text/plain;charset=UTF-8"
             ) -> requests.Response:
        return self.http.post(f"{self.base}?{self.query()}", data=body, timeout=TIMEOUT,
                              headers={"Content-Type": content_type})

    def open(self) -> tuple[dict[str, Any], list[str]]:
        """Handshake; returns the OPEN payload and the packets that came with it."""
        query = "EIO=3&transport=polling" + (f"&{self.extra}" if self.extra else "")
        reply = self.get(query)
        assert reply.status_code == 200, reply.text
        packets = split_text_payload(reply.content.decode("utf-8"))
        assert packets[0].startswith("0{"), packets
        handshake: dict[str, Any] = json.loads(packets[0][1:])
        self.sid = handshake["sid"]
        return handshake, packets[1:]

    def send(self, *packets: str) -> requests.Response:
        return self.post("".join(f"{eio3_payload.js_length(p)}:{p}" for p in packets))

    def poll(self) -> requests.Response:
        reply = self.get(self.query())
        assert reply.status_code == 200, reply.text
        return reply

    def poll_packets(self) -> list[str]:
        return split_text_payload(self.poll().content.decode("utf-8"))

    def close(self) -> None:
        if self.sid:
            try:
                self.send("1")
            except requests.RequestException:
                pass
        self.http.close()


def open_websocket(cluster: Cluster, source_ip: str, query: str) -> websocket.WebSocket:
    sock = socket.create_connection(
        ("127.0.0.1", cluster.port), timeout=TIMEOUT, source_address=(source_ip, 0))
    try:
        return websocket.create_connection(
            f"ws://127.0.0.1:{cluster.port}/socket.io/?{query}", socket=sock, timeout=TIMEOUT)
    except BaseException:
        sock.close()
        raise


def receive(ws: websocket.WebSocket) -> str | bytes:
    """The next frame that is not a noop: text as str, binary as bytes."""
    while True:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_TEXT:
            text = data.decode()
            if text != "6":
                return text
        else:
            return bytes(data)


# --- v3 > Anatomy of an Engine.IO session; v4 > Connection to the default namespace --------------


@pytest.mark.parametrize("slot", SLOTS)
def test_polling_handshake_opens_and_connects_the_default_namespace(
    chat: Cluster, slot: int
) -> None:
    """The OPEN packet carries sid, upgrades, pingInterval and pingTimeout in a `<length>:`
    payload, and the v2 client is connected to "/" at once: `40` with no sid payload follows."""
    client = Polling3(chat, ip(slot))
    try:
        handshake, rest = client.open()
        assert {"sid", "upgrades", "pingInterval", "pingTimeout"} <= set(handshake)
        assert handshake["upgrades"] == ["websocket"]
        assert rest == ["40"]
        # The session is served: an event with an ack, answered over the next poll.
        assert client.send('421["whoami"]').text == "ok"
        [ack] = client.poll_packets()
        assert ack.startswith("431[")
        assert json.loads(ack[3:])[0]["slot"] == slot
    finally:
        client.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_client_pings_and_server_pongs(chat: Cluster, slot: int) -> None:
    """v3 > 2 ping: sent by the client; the server answers with a pong carrying the same data."""
    client = Polling3(chat, ip(slot, 1))
    try:
        client.open()
        assert client.send("2").text == "ok"
        assert client.poll_packets() == ["3"]
        client.send("2probe")
        assert client.poll_packets() == ["3probe"]
    finally:
        client.close()


def test_lengths_count_utf16_code_units(chat: Cluster) -> None:
    """v3 > Payload: the length is in characters as JavaScript counts them: an astral
    character is two, a three-byte UTF-8 character one. (The server's JSON escapes non-ASCII
    text, so only what clients send shows it; tests/unit/worker/protocol/test_eio3_payload.py
    covers the other way.)"""
    client = Polling3(chat, ip(0, 2))
    try:
        client.open()
        packet = '421["echo","é€😀"]'
        assert client.post(f"{len(packet) + 1}:{packet}").text == "ok"
        [ack] = client.poll_packets()
        assert json.loads(ack[3:]) == ["é€😀"]
    finally:
        client.close()
    # Counted in code points, the same packet is one unit short: a broken payload.
    client = Polling3(chat, ip(0, 2))
    client.open()
    assert client.post(f"{len(packet)}:{packet}").status_code == 400
    client.http.close()


def test_binary_as_base64_when_the_client_asks(chat: Cluster) -> None:
    """v3 > URLs (b64) and v3 > Payload: `b4<base64>` both ways; the binary ack of a binary
    event (v4 > BINARY_EVENT, BINARY_ACK) comes back the same way."""
    client = Polling3(chat, ip(1, 2), extra="b64=1")
    try:
        client.open()
        data = bytes([0, 1, 2, 250, 255])
        encoded = "b4" + base64.b64encode(data).decode()
        assert client.send('451-1["echo",{"_placeholder":true,"num":0}]', encoded).text == "ok"
        reply = client.poll()
        assert reply.headers["Content-Type"].startswith("text/plain")
        assert split_text_payload(reply.content.decode("utf-8")) == [
            '461-1[{"_placeholder":true,"num":0}]', encoded]
    finally:
        client.close()


def test_binary_payloads_without_b64(chat: Cluster) -> None:
    """v3 > Payload, "When XHR2 is supported": a client that does not ask for b64 gets binary
    in a binary payload (application/octet-stream), and may post one."""
    client = Polling3(chat, ip(0, 3))
    try:
        client.open()
        data = bytes(range(256))
        body = eio3_payload.encode_binary_payload([
            eio3_payload.packet.Packet(4, '51-1["echo",{"_placeholder":true,"num":0}]'),
            eio3_payload.packet.Packet(4, data),
        ])
        assert client.post(body, eio3_payload.BINARY_CONTENT_TYPE).text == "ok"
        reply = client.poll()
        assert reply.headers["Content-Type"] == eio3_payload.BINARY_CONTENT_TYPE
        packets = eio3_payload.decode_binary_payload(reply.content)
        assert [p.data for p in packets] == ['61-1[{"_placeholder":true,"num":0}]', data]
    finally:
        client.close()


def test_jsonp(chat: Cluster) -> None:
    """v3 > JSONP: with `j`, responses are `___eio[<j>]("<payload>");` and posts are the form
    field d."""
    client = Polling3(chat, ip(1, 3), extra="j=2")
    try:
        reply = client.get("EIO=3&transport=polling&j=2")
        assert reply.status_code == 200
        body = reply.content.decode("utf-8")
        match = re.fullmatch(r'___eio\[2\]\((".*")\);', body)
        assert match, body
        [opening, connected] = split_text_payload(json.loads(match.group(1)))
        client.sid = json.loads(opening[1:])["sid"]
        assert connected == "40"
        packet = '421["echo","a\\"b"]'  # a quote in the data: the JSON holds a backslash
        reply = client.http.post(f"{client.base}?{client.query()}", timeout=TIMEOUT,
                                 data={"d": f"{len(packet)}:{packet}"})
        assert (reply.status_code, reply.text) == (200, "ok")
        body = client.poll().content.decode("utf-8")
        assert body == '___eio[2]("11:431[\\"a\\\\\\"b\\"]");'
        assert json.loads(body[len("___eio[2]("):-2]) == '11:431["a\\"b"]'
    finally:
        client.close()


# --- v3 > WebSocket; v3 > Transport upgrading ----------------------------------------------------


@pytest.mark.parametrize("slot", SLOTS)
def test_websocket_only_session(chat: Cluster, slot: int) -> None:
    """v3 > Sample session with WebSocket only: OPEN, then `40`; pings answered; binary frames
    lead with the packet type (v3 > Packet: "the packet type id is sent in the first byte")."""
    ws = open_websocket(chat, ip(slot, 4), "EIO=3&transport=websocket")
    try:
        first = receive(ws)
        assert isinstance(first, str) and first.startswith("0{")
        assert json.loads(first[1:])["upgrades"] == []
        assert receive(ws) == "40"
        ws.send("2")
        assert receive(ws) == "3"
        ws.send('451-1["echo",{"_placeholder":true,"num":0}]')
        ws.send_binary(b"\x04\x00\x01\xff")
        assert receive(ws) == '461-1[{"_placeholder":true,"num":0}]'
        assert receive(ws) == b"\x04\x00\x01\xff"
        ws.send('421["whoami"]')
        answer = receive(ws)
        assert isinstance(answer, str) and json.loads(answer[3:])[0]["slot"] == slot
    finally:
        ws.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_upgrade(chat: Cluster, slot: int) -> None:
    """v3 > Transport upgrading: `2probe` answered `3probe`, the pending poll ends with a noop,
    `5` switches; the session then goes on over the websocket."""
    source = ip(slot, 5)
    client = Polling3(chat, source)
    client.open()
    ws = open_websocket(chat, source, f"EIO=3&transport=websocket&sid={client.sid}")
    try:
        ws.send("2probe")
        assert receive(ws) == "3probe"
        assert client.poll_packets() == ["6"]
        ws.send("5")
        ws.send('421["echo","over ws"]')
        assert receive(ws) == '431["over ws"]'
    finally:
        ws.close()
        client.http.close()


# --- v4 > Connection to a namespace; v4 > ERROR --------------------------------------------------


@pytest.mark.parametrize("slot", SLOTS)
def test_unknown_namespace_gets_the_v2_error_packet(chat: Cluster, slot: int) -> None:
    """A CONNECT to a namespace the server does not have is refused with an ERROR packet whose
    payload is the message string, as the Socket.IO 2 server sent it (`44/nope,"Invalid
    namespace"`); the default namespace stays connected."""
    client = Polling3(chat, ip(slot, 6))
    try:
        client.open()
        client.send("40/nope,")
        assert client.poll_packets() == ['44/nope,"Invalid namespace"']
        client.send('421["echo",1]')
        assert client.poll_packets() == ["431[1]"]
    finally:
        client.close()


@pytest.mark.parametrize("slot", SLOTS)
def test_namespace_connect_with_a_query(chat: Cluster, slot: int) -> None:
    """v4 > CONNECT: the client sends `0/chat,` (no payload), or `0/chat?<query>,`; the server
    answers with a bare `40/chat,` and, as the reference server, hands the query over as the
    connection's auth payload."""
    client = Polling3(chat, ip(slot, 9))
    try:
        client.open()
        client.send("40/chat?token=abc&lang=fr,")
        assert client.poll_packets() == ["40/chat,"]
        client.send('42/chat,7["auth"]')
        assert client.poll_packets() == ['43/chat,7[{"token":"abc","lang":"fr"}]']
    finally:
        client.close()
    plain = Polling3(chat, ip(slot, 10))
    try:
        plain.open()
        plain.send("40/chat,")
        assert plain.poll_packets() == ["40/chat,"]
        plain.send('42/chat,8["auth"]')
        assert plain.poll_packets() == ["43/chat,8[]"]  # no auth: the handler returns None
    finally:
        plain.close()


# --- Bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["5:4abc", "x", "2:9x"])
def test_invalid_payload_closes_the_session(chat: Cluster, body: str) -> None:
    """A payload that is not v3 framing gets a 400 and closes the session (as in v4); the worker
    goes on serving others."""
    client = Polling3(chat, ip(0, 7))
    client.open()
    assert client.post(body).status_code == 400
    assert client.get(client.query()).status_code == 400
    other = Polling3(chat, ip(0, 7))
    try:
        other.open()
    finally:
        other.close()


# --- v3 > Timeouts -------------------------------------------------------------------------------


@pytest.mark.parametrize("slot", SLOTS)
def test_server_closes_a_client_that_stops_pinging(fastping: Cluster, slot: int) -> None:
    """"the server will also be able to detect whether the client becomes unresponsive when it
    does not receive any data within pingTimeout + pingInterval" (0.3 s + 1 s here): a session
    that stops pinging ends (its poll gets the close packet, or a 400 once it is gone)."""
    client = Polling3(fastping, ip(slot, 8))
    handshake, _ = client.open()
    assert handshake["pingInterval"] == 300
    deadline = time.monotonic() + 20
    ended = False
    while not ended and time.monotonic() < deadline:
        reply = client.get(client.query())
        if reply.status_code == 400:
            ended = True
        else:
            ended = "1" in split_text_payload(reply.content.decode("utf-8"))
    assert ended, "the server kept a silent session open"


@pytest.mark.parametrize("slot", SLOTS)
def test_silent_websocket_is_closed(fastping: Cluster, slot: int) -> None:
    """The same over a websocket: the server ends a session whose client never pings (the v3
    test suite: "closes the session upon ping timeout")."""
    ws = open_websocket(fastping, ip(slot, 10), "EIO=3&transport=websocket")
    deadline = time.monotonic() + 20
    frames: list[Any] = []
    closed = False
    try:
        while not closed and time.monotonic() < deadline:
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketConnectionClosedException:
                closed = True
                continue
            except (TimeoutError, websocket.WebSocketTimeoutException):
                continue
            closed = opcode == websocket.ABNF.OPCODE_CLOSE
            frames.append(data)
    finally:
        ws.close()
    assert closed, f"the server kept a silent websocket open; it sent {frames!r}"
    # Like the reference server, it ends the transport (no close packet is owed).
    assert frames[0].startswith(b"0{")


def test_ping_after_the_timeout_finds_the_session_gone(fastping: Cluster) -> None:
    """The v3 test suite's "closes the session upon ping timeout": a client silent for longer
    than pingInterval + pingTimeout (1.3 s here) that pings again gets a 400."""
    client = Polling3(fastping, ip(0, 9))
    client.open()
    time.sleep(2.0)  # past pingInterval + pingTimeout: the point of the test
    # On a new connection: the worker closes a kept-alive one after 2 s idle (--keepalive),
    # and a request sent on it just then finds it closed.
    client.http.close()
    assert client.send("2").status_code == 400
    client.http.close()


# --- allow_eio3 off ------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_eio3_refused_without_allow_eio3(v4_only: Cluster, transport: str) -> None:
    """Without --allow-eio3, an EIO=3 handshake gets a 400 whose message says how to allow it."""
    with bound_session(ip(1)) as http:
        # A complete websocket handshake: uvicorn refuses an incomplete one before the app.
        headers = {"Connection": "Upgrade", "Upgrade": "websocket",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                   "Sec-WebSocket-Version": "13"} if transport == "websocket" else {}
        reply = http.get(f"{v4_only.url}/socket.io/?EIO=3&transport={transport}",
                         headers=headers, timeout=TIMEOUT)
    assert reply.status_code == 400
    assert "--allow-eio3" in reply.json()
