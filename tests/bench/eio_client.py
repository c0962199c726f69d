"""A raw Socket.IO v5 / Engine.IO v4 speaker over one websocket, on asyncio, for load generation.

One :class:`Session` is one client: it opens a TCP connection from a chosen 127.x source
address, upgrades it to a websocket by hand, connects the default namespace and then sends
events (with or without an ack) and hands the events it receives to a callback. It answers
Engine.IO pings. It knows nothing else: no polling, no binary packets, no reconnects, no other
namespace. It is an ``asyncio.Protocol`` parsing frames in ``data_received`` so that thousands
of sessions in one process cost little CPU per message; python-socketio's own client would
be what limits the measured rate.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import zlib
from collections.abc import Callable
from typing import Any, cast

# Engine.IO packet types (first character of a frame) and Socket.IO packet types (second).
EIO_OPEN, EIO_CLOSE, EIO_PING, EIO_PONG, EIO_MESSAGE = "0", "1", "2", "3", "4"
SIO_CONNECT, SIO_EVENT, SIO_ACK, SIO_CONNECT_ERROR = "0", "2", "3", "4"

# Websocket opcodes.
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

EventHandler = Callable[["Session", str, Any], None]
# Called with an ack's arguments as JSON text, undecoded, or None if the connection was lost.
AckHandler = Callable[[str | None], None]
# What a browser offers (Chrome, Firefox), sent when Session.offer_deflate is set.
DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
# The end of every compressed message, left off on the wire (RFC 7692).
DEFLATE_TAIL = b"\x00\x00\xff\xff"


def _frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked client frame. The mask key is zero: RFC 6455 wants client frames masked
    (servers refuse unmasked ones) but lets the key be any value, and a zero key spares the
    load generator the XOR while the server still does its full unmasking work."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


class Session(asyncio.Protocol):
    """One Socket.IO client session; create it with :func:`connect`.

    ``sid`` is the namespace session id (what ``emit(to=...)`` takes); ``on_event`` is called
    as ``on_event(session, name, first_argument)`` for every event the server sends.

    With ``offer_deflate`` (set on the class: compare.py --offer-deflate), the handshake offers
    permessage-deflate as a browser does and, when the server accepts, every message sent is
    compressed (as Chrome does) and compressed messages received are inflated.
    """

    offer_deflate = False

    def __init__(self, host: str, port: int, on_event: EventHandler | None) -> None:
        self.host, self.port = host, port
        self.on_event = on_event
        self.sid = ""
        self.closed = asyncio.get_running_loop().create_future()
        self._connected = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []
        self._next_ack = 0
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._ack_handlers: dict[int, AckHandler] = {}
        # Set when the server accepted permessage-deflate (context takeover both ways).
        self._inflate: Any = None
        self._deflate: Any = None

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        key = "c2lvY3RsLWJlbmNoLWtleQ=="  # any 16 bytes in base64; the server only echoes a hash
        self._transport.write(
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{DEFLATE_OFFER if self.offer_deflate else ''}\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            self._accept_extensions(bytes(buf[:end]).decode("latin-1").lower())
            del buf[: end + 4]
            if b" 101 " not in status:
                self._fail(ConnectionError(f"websocket upgrade refused: {status!r}"))
                return
            self._upgraded = True
        # Parse every complete frame; server frames are never masked.
        pos, size = 0, len(buf)
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            if first & 0x40 and self._inflate is not None:  # RSV1: a compressed message
                payload = self._inflate.decompress(payload + DEFLATE_TAIL)
            self._frame_received(first & 0x80, first & 0x0F, payload)
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        error = exc or ConnectionError("connection closed")
        self._fail(error)
        if not self.closed.done():
            self.closed.set_result(None)

    def _accept_extensions(self, head: str) -> None:
        """Set up permessage-deflate if the server's answer (lowercase head) accepted it."""
        if not self.offer_deflate or "permessage-deflate" not in head:
            return
        bits = re.search(r"client_max_window_bits=(\d+)", head)
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._deflate = zlib.compressobj(wbits=-int(bits.group(1)) if bits else -zlib.MAX_WBITS)

    # ------------------------------------------------------------------------ frames

    def _frame_received(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode == OP_CONT or not fin:
            # A fragmented message: rare for the small packets of a benchmark, but legal.
            self._fragments.append(payload)
            if not fin:
                return
            payload, self._fragments = b"".join(self._fragments), []
            opcode = OP_TEXT
        if opcode == OP_TEXT:
            self._packet_received(payload.decode())
        elif opcode == OP_PING:
            self._send(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            self.close()

    def _packet_received(self, packet: str) -> None:
        kind = packet[:1]
        if kind == EIO_MESSAGE:
            sio_kind = packet[1:2]
            if sio_kind == SIO_EVENT:
                args = json.loads(packet[packet.index("[", 2) :])
                if self.on_event is not None:
                    self.on_event(self, args[0], args[1] if len(args) > 1 else None)
            elif sio_kind == SIO_ACK:
                start = packet.index("[", 2)
                ack_id = int(packet[2:start])
                handler = self._ack_handlers.pop(ack_id, None)
                if handler is not None:
                    handler(packet[start:])
                    return
                future = self._acks.pop(ack_id, None)
                if future is not None and not future.done():
                    args = json.loads(packet[start:])
                    future.set_result(args[0] if args else None)
            elif sio_kind == SIO_CONNECT and not self._connected.done():
                self.sid = json.loads(packet[2:])["sid"]
                self._connected.set_result(None)
            elif sio_kind == SIO_CONNECT_ERROR:
                self._fail(ConnectionError(f"namespace connect refused: {packet!r}"))
        elif kind == EIO_PING:
            self._send(OP_TEXT, (EIO_PONG + packet[1:]).encode())
        elif kind == EIO_OPEN:
            self._send(OP_TEXT, (EIO_MESSAGE + SIO_CONNECT).encode())
        elif kind == EIO_CLOSE:
            self.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            deflate = self._deflate
            if deflate is not None and opcode in (OP_TEXT, OP_BINARY):
                data = deflate.compress(payload) + deflate.flush(zlib.Z_SYNC_FLUSH)
                frame = bytearray(_frame(opcode, data[:-4]))
                frame[0] |= 0x40  # RSV1: compressed
                self._transport.write(bytes(frame))
                return
            self._transport.write(_frame(opcode, payload))

    def _fail(self, error: Exception) -> None:
        if not self._connected.done():
            self._connected.set_exception(error)
        for future in self._acks.values():
            if not future.done():
                future.set_exception(error)
        self._acks.clear()
        handlers, self._ack_handlers = self._ack_handlers, {}
        for handler in handlers.values():
            handler(None)
        if self._transport is not None:
            self._transport.close()

    # ---------------------------------------------------------------------- public

    @property
    def is_open(self) -> bool:
        """True while the connection stands."""
        return not self.closed.done()

    def emit(self, event: str, data: Any) -> None:
        """Send ``event`` with ``data``, asking for no ack."""
        body = json.dumps([event, data], separators=(",", ":"))
        self._send(OP_TEXT, (EIO_MESSAGE + SIO_EVENT + body).encode())

    def call(self, event: str, data: Any) -> asyncio.Future[Any]:
        """Send ``event`` with ``data``; the future gets the first argument of the server's ack
        (or the connection's error). The caller bounds the wait."""
        ack_id = self._next_ack
        self._next_ack += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        body = json.dumps([event, data], separators=(",", ":"))
        self._send(OP_TEXT, f"{EIO_MESSAGE}{SIO_EVENT}{ack_id}{body}".encode())
        return future

    def call_encoded(self, arguments: bytes, on_ack: AckHandler) -> None:
        """Send an event whose JSON array (``b'["name",data]'``) the caller encoded, asking for
        an ack: ``on_ack`` is called with the ack's arguments as JSON text, not decoded, or
        with None if the connection is lost first. For a load generator that writes its
        requests from a template and only counts the answers: no future, no JSON either way."""
        ack_id = self._next_ack
        self._next_ack += 1
        self._ack_handlers[ack_id] = on_ack
        # 4 (Engine.IO message) 2 (Socket.IO event), the ack id, the arguments.
        self._send(OP_TEXT, b"42%d%s" % (ack_id, arguments))

    def close(self) -> None:
        """Close the TCP connection at once (no closing handshake); never raises."""
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Reset the connection (RST): no TIME_WAIT left behind on either side."""
        if self._transport is not None:
            self._transport.abort()

    def arrival(self) -> float:
        """When what is being handed to ``on_event`` arrived: now (a :class:`Recorder`
        replaying what it recorded says when each piece came)."""
        return now()


class Recorder(Session):
    """A session that, while recording, keeps what it receives as it comes (its arrival time
    and bytes) and parses it afterwards (:meth:`replay`): a receiver of many small events then
    costs the load generator an append and a count per read instead of the frame parsing, the
    JSON decoding and the callback, so that the generator competes less with the servers it
    measures. The kernel's side (the read itself, as soon as the data is there) is a
    :class:`Session`'s: the servers see the same client. What must be answered at once makes
    it replay what it has at that moment: an Engine.IO ping in one frame (bytes 0x81 0x01
    then ``2``) or a websocket control frame (first byte 0x88-0x8a), bytes that never occur in
    the ASCII JSON of the events it is meant for. Meanwhile ``marked`` counts the arrivals of
    a marker (the start of an event's packet) not yet replayed, one cut across two reads
    included, and ``last_marked`` says when the last came.
    """

    def __init__(self, host: str, port: int, on_event: EventHandler | None) -> None:
        super().__init__(host, port, on_event)
        self._recording: list[tuple[float, bytes]] | None = None
        self._replaying_at = 0.0
        self._marker = b""
        # The end of what came last, too short to hold the marker: one cut across two reads
        # is counted when its second part comes.
        self._tail = b""
        self.marked = 0
        self.last_marked = 0.0

    def record(self, marker: bytes) -> None:
        """Start recording (after the handshake); ``marker`` is what ``marked`` counts. A
        session whose messages come compressed (``offer_deflate``) parses them as they come
        (compressed bytes can hold anything)."""
        if self._inflate is None:
            self._recording = []
            self._marker = marker

    def data_received(self, data: bytes) -> None:
        recording = self._recording
        if recording is None:
            super().data_received(data)
            return
        at = now()
        recording.append((at, data))
        stream = self._tail + data
        found = stream.count(self._marker)
        self._tail = stream[1 - len(self._marker):]
        if found:
            self.marked += found
            self.last_marked = at
        if b"\x81\x012" in data or b"\x88" in data or b"\x89" in data or b"\x8a" in data:
            self.replay()
            self._recording = []

    def replay(self) -> None:
        """Parse what was recorded, in order, as it would have been parsed on arrival
        (``arrival()`` says when each piece came); recording stops."""
        recording, self._recording = self._recording or [], None
        self.marked = 0  # what was counted is parsed now (on_event hears it)
        for at, data in recording:
            self._replaying_at = at
            super().data_received(data)
        self._replaying_at = 0.0

    def arrival(self) -> float:
        return self._replaying_at or now()


async def connect(host: str, port: int, source_ip: str, timeout: float = 10.0,
                  on_event: EventHandler | None = None,
                  kind: type[Session] = Session) -> Session:
    """A connected session (a ``kind``) from ``source_ip`` (TCP, websocket upgrade, Engine.IO
    open and the namespace connect), within ``timeout`` seconds; raises OSError,
    ConnectionError or TimeoutError otherwise (and leaves nothing open)."""
    loop = asyncio.get_running_loop()
    session = kind(host, port, on_event)

    async def opening() -> None:
        await loop.create_connection(lambda: session, host, port, local_addr=(source_ip, 0))
        await session._connected

    try:
        await asyncio.wait_for(opening(), timeout)
    except BaseException:
        session.abort()
        raise
    return session


def now() -> float:
    """The clock that latency stamps use (one process, so sender and receiver agree)."""
    return time.perf_counter()

