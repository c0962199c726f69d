"""A Socket.IO websocket client that can offer permessage-deflate (RFC 7692) as browsers do, over
a plain socket, for the tests of ``--ws-per-message-deflate`` (tests/e2e/test_ws_deflate.py).

websocket-client (the other tests' raw client) cannot negotiate the extension; this one writes
the handshake itself, keeps the server's answer (``extensions``), and reads every frame itself,
so a test sees whether each frame came compressed (RSV1) as well as what it says.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import struct
import zlib
from collections.abc import Callable
from typing import Any

TIMEOUT = 15.0
# Chrome's and Firefox's offer, as they send it.
BROWSER_OFFER = "permessage-deflate; client_max_window_bits"
# The empty deflate block every compressed message ends with, left off on the wire (RFC 7692).
TAIL = b"\x00\x00\xff\xff"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
PLACEHOLDER = {"_placeholder": True, "num": 0}


class Frame:
    """One message the server sent: opcode, payload (decompressed), and whether it was
    compressed on the wire."""

    def __init__(self, opcode: int, payload: bytes, compressed: bool) -> None:
        self.opcode = opcode
        self.payload = payload
        self.compressed = compressed

    @property
    def text(self) -> str:
        return self.payload.decode()


class DeflateSocket:
    """An Engine.IO v4 websocket to ``port`` from ``source_ip``, offering permessage-deflate
    when ``offer`` (False: no extension header, as the python clients). ``extensions`` is the
    server's Sec-WebSocket-Extensions answer (None when it sent none)."""

    def __init__(self, port: int, source_ip: str, offer: bool) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT,
                                             source_address=(source_ip, 0))
        self._buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET /socket.io/?EIO=4&transport=websocket HTTP/1.1",
                 f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if offer:
            lines.append(f"Sec-WebSocket-Extensions: {BROWSER_OFFER}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        status, *fields = head.split("\r\n")
        assert " 101 " in status, f"not switched to a websocket: {head!r}"
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (f.partition(":") for f in fields if f)}
        self.extensions: str | None = headers.get("sec-websocket-extensions")
        self.compressing = bool(self.extensions and "permessage-deflate" in self.extensions)
        # Context takeover both ways (offered by no one not to); what this client sends uses
        # the window the server allowed (websockets answers client_max_window_bits=12).
        bits = re.search(r"client_max_window_bits=(\d+)", self.extensions or "")
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._deflate = zlib.compressobj(wbits=-int(bits.group(1)) if bits else -zlib.MAX_WBITS)

    def _read_until(self, end: bytes) -> bytes:
        while end not in self._buffer:
            self._fill()
        head, _, self._buffer = self._buffer.partition(end)
        return head

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self._buffer += data

    def _take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._fill()
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def send(self, payload: str | bytes, compress: bool = False) -> None:
        """One masked frame (text for str, binary for bytes); compressed when ``compress`` and
        the extension was negotiated (a browser compresses every message)."""
        data = payload.encode() if isinstance(payload, str) else payload
        first = 0x80 | (TEXT if isinstance(payload, str) else BINARY)
        if compress and self.compressing:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            assert data.endswith(TAIL)
            data = data[:-4]
            first |= 0x40  # RSV1: this message is compressed
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", first, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", first, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", first, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + masked)

    def frame(self) -> Frame:
        """The next message (control frames other than close included), decompressed."""
        opcode, compressed, parts = 0, False, []
        while True:
            first, second = self._take(2)
            assert not second & 0x80, "a server frame must not be masked"
            assert not first & 0x30, f"RSV2/RSV3 set: {first:#x}"
            n = second & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._take(8))[0]
            parts.append(self._take(n))
            if first & 0x0F:
                opcode, compressed = first & 0x0F, bool(first & 0x40)
            if first & 0x80:
                break
        payload = b"".join(parts)
        if compressed:
            assert self.compressing, "a compressed frame on a websocket that did not negotiate it"
            payload = self._inflate.decompress(payload + TAIL)
        return Frame(opcode, payload, compressed)

    def close(self) -> None:
        self.sock.close()


class SioDeflateClient:
    """A Socket.IO client of the main namespace on a :class:`DeflateSocket`: ``frames`` keeps
    every Socket.IO frame received (Engine.IO pings answered), in order."""

    def __init__(self, port: int, source_ip: str, offer: bool, compress: bool = True) -> None:
        self.ws = DeflateSocket(port, source_ip, offer)
        self.compress = compress
        self.frames: list[Frame] = []
        # Frames received and not yet taken by an ack or event look-up.
        self._unread: list[Frame] = []
        opened = self.ws.frame()
        assert opened.text.startswith("0{"), opened.text
        self.ws.send("40", compress)
        connected = self._take(lambda text: text.startswith("40"))
        self.sid = json.loads(connected.text[2:])["sid"]
        self._ack = 0

    def _read(self) -> Frame:
        while True:
            frame = self.ws.frame()
            if frame.opcode == TEXT and frame.payload == b"2":
                self.ws.send("3", self.compress)
                continue
            self.frames.append(frame)
            return frame

    def _take(self, wanted: Callable[[str], bool], attachment: bool = False) -> Frame:
        """The first text frame received that ``wanted`` accepts (read up to 1000 more);
        with ``attachment``, the binary frame that follows it instead."""
        for index, frame in enumerate(self._unread):
            if frame.opcode == TEXT and wanted(frame.text):
                del self._unread[index]
                if not attachment:
                    return frame
                return self._unread.pop(index) if index < len(self._unread) else self._read()
        for _ in range(1000):
            frame = self._read()
            if frame.opcode == TEXT and wanted(frame.text):
                return self._read() if attachment else frame
            self._unread.append(frame)
        raise AssertionError(f"nothing wanted among {len(self.frames)} frames")

    def _emit(self, head: str, *attachments: bytes) -> str:
        self._ack += 1
        self.ws.send(head.replace("#", str(self._ack), 1), self.compress)
        for blob in attachments:
            self.ws.send(blob, self.compress)
        return str(self._ack)

    def call(self, event: str, data: Any) -> Any:
        """Emit ``event`` with ``data`` (JSON); the ack's first argument."""
        ack = self._emit("42#" + json.dumps([event, data]))
        prefix = f"43{ack}["
        return json.loads(self._take(lambda t: t.startswith(prefix)).text[len(prefix) - 1:])[0]

    def call_binary(self, event: str, blob: bytes) -> bytes:
        """Emit ``event`` with one binary attachment; the attachment of the (binary) ack."""
        ack = self._emit("451-#" + json.dumps([event, PLACEHOLDER]), blob)
        frame = self._take(lambda t: t.startswith(f"461-{ack}["), attachment=True)
        assert frame.opcode == BINARY
        return frame.payload

    def call_binary_event(self, event: str, blob: bytes) -> Any:
        """Emit ``event`` with one binary attachment; the first argument of its plain ack."""
        ack = self._emit("451-#" + json.dumps([event, PLACEHOLDER]), blob)
        prefix = f"43{ack}["
        return json.loads(self._take(lambda t: t.startswith(prefix)).text[len(prefix) - 1:])[0]

    def event(self, name: str) -> tuple[Any, Frame]:
        """The next plain event ``name`` (its first argument) and the frame that carried it."""
        prefix = "42" + json.dumps([name])[:-1] + ","
        frame = self._take(lambda t: t.startswith(prefix))
        return json.loads(frame.text[2:])[1], frame

    def binary_event(self, name: str) -> bytes:
        """The attachment of the next event ``name`` with one binary attachment."""
        prefix = "451-" + json.dumps([name])[:-1] + ","
        frame = self._take(lambda t: t.startswith(prefix), attachment=True)
        assert frame.opcode == BINARY
        return frame.payload

    def close(self) -> None:
        self.ws.close()
