"""Raw Engine.IO / Socket.IO clients for the protocol conformance tests
(tests/contract/test_conformance.py) and the hardening tests that reuse them: ``Polling`` (HTTP
long-polling from one source address), websocket openers and the checks that a session closed."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest
import requests
import websocket

from tests.support.clients import bound_session, ips_for_slot, open_session
from tests.support.cluster import Cluster

WORKERS = 2
# Every wait is bounded: a reply the specification requires arrives well within this.
TIMEOUT = 5.0
# Frames read for one answer before giving up (pings and noops in between), bounded.
MAX_FRAMES = 200
SEP = "\x1e"


class Polling:
    """A raw HTTP long-polling client from one source address."""

    def __init__(self, cluster: Cluster, source_ip: str, path: str = "socket.io") -> None:
        self.base = f"{cluster.url}/{path}/"
        self.http = bound_session(source_ip)
        self.source_ip = source_ip
        self.sid = ""

    def url(self, query: str) -> str:
        return f"{self.base}?{query}"

    def get(self, query: str) -> requests.Response:
        return self.http.get(self.url(query), timeout=TIMEOUT)

    def post(self, query: str, body: str | bytes) -> requests.Response:
        return self.http.post(self.url(query), data=body, timeout=TIMEOUT)

    def open(self) -> dict[str, Any]:
        """Handshake; returns the OPEN packet's JSON payload and remembers the sid."""
        reply = self.get("EIO=4&transport=polling")
        assert reply.status_code == 200, reply.text
        assert reply.text.startswith("0{"), f"not an OPEN packet: {reply.text!r}"
        handshake: dict[str, Any] = json.loads(reply.text[1:])
        self.sid = handshake["sid"]
        return handshake

    def send(self, *packets: str) -> requests.Response:
        """POST the packets as one payload."""
        return self.post(f"EIO=4&transport=polling&sid={self.sid}", SEP.join(packets))

    def poll(self) -> list[str]:
        """One GET; returns the packets of its payload."""
        reply = self.get(f"EIO=4&transport=polling&sid={self.sid}")
        assert reply.status_code == 200, reply.text
        return reply.text.split(SEP)

    def connect_namespace(self) -> str:
        """Handshake and Socket.IO CONNECT to "/"; returns the Socket.IO sid."""
        self.open()
        assert self.send("40").status_code == 200
        packets = self.poll()
        assert packets[0].startswith("40{"), packets
        return str(json.loads(packets[0][2:])["sid"])

    def pending_get(self) -> PendingGet:
        """A long-polling GET of this session, sent from another connection of the same
        address and left waiting in a thread; ``result()`` gives (status, body) once it ends."""
        return PendingGet(self)

    def close(self) -> None:
        if self.sid:
            # Engine.IO "close" packet, so the worker drops the session at once.
            try:
                self.send("1")
            except requests.RequestException:
                pass
        self.http.close()


class PendingGet:
    """See :meth:`Polling.pending_get`."""

    def __init__(self, client: Polling) -> None:
        self.reply: tuple[int, str] | Exception | None = None
        self._url = client.url(f"EIO=4&transport=polling&sid={client.sid}")
        self._http = bound_session(client.source_ip)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            reply = self._http.get(self._url, timeout=TIMEOUT)
            self.reply = (reply.status_code, reply.text)
        except requests.RequestException as exc:
            self.reply = exc
        finally:
            self._http.close()

    def result(self) -> tuple[int, str] | Exception | None:
        """Wait (bounded) for the GET to end; None if it has not."""
        self._thread.join(TIMEOUT + 1)
        return self.reply


def open_websocket(
    cluster: Cluster, source_ip: str, query: str, path: str = "socket.io"
) -> websocket.WebSocket:
    """A websocket to /path/?query from ``source_ip``."""
    sock = socket.create_connection(
        ("127.0.0.1", cluster.port), timeout=TIMEOUT, source_address=(source_ip, 0)
    )
    try:
        return websocket.create_connection(
            f"ws://127.0.0.1:{cluster.port}/{path}/?{query}", socket=sock, timeout=TIMEOUT
        )
    except BaseException:
        sock.close()
        raise


def receive(ws: websocket.WebSocket, skip_pings: bool = True) -> str | bytes:
    """The next frame: text as str, binary as bytes (Engine.IO pings answered and skipped, and
    noops skipped: python-engineio also sends a `noop` on the websocket during an upgrade)."""
    while True:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_TEXT:
            text = data.decode()
            if skip_pings and text == "2":
                ws.send("3")
                continue
            if skip_pings and text == "6":
                continue
            return text
        return bytes(data)


def ws_open(cluster: Cluster, source_ip: str) -> tuple[websocket.WebSocket, dict[str, Any]]:
    """A websocket-only Engine.IO session; returns it and its OPEN payload."""
    ws = open_websocket(cluster, source_ip, "EIO=4&transport=websocket")
    first = receive(ws)
    assert isinstance(first, str) and first.startswith("0{"), f"not an OPEN packet: {first!r}"
    return ws, json.loads(first[1:])


def assert_ws_closed(ws: websocket.WebSocket) -> list[str | bytes]:
    """Read until the server ends the websocket; returns the frames it sent first (an
    Engine.IO `close` packet may be among them). Fails if it stays open past TIMEOUT or sends
    something that is not a websocket frame (an HTTP status line on the upgraded socket)."""
    seen: list[str | bytes] = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            opcode, data = ws.recv_data()
        except (websocket.WebSocketConnectionClosedException, ConnectionResetError,
                BrokenPipeError):
            # A reset ends it too: a server that stops reading a flooding client closes the
            # socket with unread data, and the kernel then answers with RST (and the client's
            # reply to the close frame hits a broken pipe).
            return seen
        except (TimeoutError, websocket.WebSocketTimeoutException):
            break
        except websocket.WebSocketException as exc:
            pytest.fail(f"not a clean websocket close: {exc!r} after {seen!r}")
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return seen
        frame: str | bytes = data.decode() if opcode == websocket.ABNF.OPCODE_TEXT else data
        assert not (isinstance(frame, str) and frame.startswith("HTTP/")), frame
        seen.append(frame)
    pytest.fail(f"the server kept the websocket open; it sent {seen!r}")


def assert_gone_and_another_served(cluster: Cluster, source_ip: str, what: str,
                                   timeout: float) -> None:
    """The session a test ended is gone: slot 0 (a one-worker cluster) counts no session
    within ``timeout`` (``what`` names the wait in a failure); then a new websocket session
    from ``source_ip`` has an acknowledged echo answered, as before (pings answered on the
    way, at most MAX_FRAMES frames read)."""
    cluster.wait_for(lambda s: s["slots"][0]["sessions"] == 0, timeout=timeout, what=what)
    other = open_session(cluster.port, source_ip)
    try:
        assert_echoed(other, "fine")
    finally:
        other.close()


def assert_echoed(ws: Any, text: str) -> None:
    """An acknowledged ``echo`` of ``text`` sent on the session's websocket ``ws`` is answered
    (pings answered on the way, at most MAX_FRAMES frames read)."""
    ws.send(f'421["echo",{json.dumps(text)}]')
    wanted = f'431[{json.dumps(text)}]'
    seen: list[str | bytes] = []
    for _ in range(MAX_FRAMES):
        seen.append(receive(ws))
        if seen[-1] == wanted:
            return
    pytest.fail(f"the echo of {text!r} was not answered: {seen!r}")


def assert_polling_closed(client: Polling) -> None:
    """The session is gone: its GETs end in a 400 (after at most the `close` packet)."""
    query = f"EIO=4&transport=polling&sid={client.sid}"
    for _ in range(3):
        reply = client.get(query)
        if reply.status_code == 400:
            return
        assert reply.status_code == 200, reply.text
        assert "1" in reply.text.split(SEP), f"session still open: {reply.text!r}"
    pytest.fail("the session's GETs never got a 400")


def ip(slot: int, index: int = 0) -> str:
    """A source address the master serves from ``slot``."""
    candidates = ips_for_slot(slot, WORKERS)
    return candidates[index % len(candidates)]
