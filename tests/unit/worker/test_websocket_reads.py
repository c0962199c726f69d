"""The websocket read path of both engines (worker/ws_reads.py on eventlet,
worker/protocol/async_websocket.py on asyncio): frames however they arrive, and the limit on one
read's wait (python-engineio's ``ping_interval + ping_timeout``), kept by one timer per
websocket instead of one per read.

Each engine runs in a child interpreter (eventlet must monkey-patch first); the script prints
what it saw as one JSON line, and the same assertions hold for both:

- ``frames``: fifty frames written at once and one written a byte at a time, read in order;
- ``steady``: frames that keep coming, each well within the limit, are all read, over a span of
  time longer than the limit itself (the timer is moved, not fired);
- ``timed_out``: a read that gets nothing ends with a timeout, once the limit has passed.

On asyncio also with the deadlines checked by a ``DeadlineSweep`` (the worker's way).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support.paths import REPO_ROOT

EVENTLET = r'''
import warnings
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet
eventlet.monkey_patch()
import json
import socket
import websocket
from eventlet.websocket import RFC6455WebSocket
from sioctl.worker import ws_reads

def frame(text):
    return websocket.ABNF.create_frame(text, websocket.ABNF.OPCODE_TEXT).format()

ours, theirs = socket.socketpair()
ws = RFC6455WebSocket(ours, {}, 13)
ws_reads.buffer_reads(ws)
ws.socket.settimeout(1.0)
theirs.sendall(b"".join(frame(f"m{n}") for n in range(50)))
frames = [ws.wait() for _ in range(50)]

def dribble(data):
    for byte in data:
        theirs.sendall(bytes([byte]))
        eventlet.sleep(0)

eventlet.spawn(dribble, frame("split"))
frames.append(ws.wait())

def steadily(count):
    for n in range(count):
        eventlet.sleep(0.1)
        theirs.sendall(frame(f"s{n}"))

eventlet.spawn(steadily, 15)  # 1.5 s of frames, each 0.1 s after the last
steady = [ws.wait() for _ in range(15)]
ws.socket.settimeout(0.3)
try:
    ws.wait()
    timed_out = None
except OSError as exc:
    timed_out = type(exc).__name__
print(json.dumps({"frames": frames, "steady": steady, "timed_out": timed_out}))
'''

ASYNCIO = r'''
import asyncio
import json
from sioctl.worker.protocol.async_websocket import ReadDeadline

async def main():
    queue = asyncio.Queue()
    for n in range(50):
        queue.put_nowait(f"m{n}")
    queue.put_nowait("split")

    async def read(deadline):
        deadline.waiting()
        try:
            return await queue.get()
        finally:
            deadline.done()

    deadline = ReadDeadline(1.0)
    frames = [await read(deadline) for _ in range(51)]

    async def steadily(count):
        for n in range(count):
            await asyncio.sleep(0.1)
            queue.put_nowait(f"s{n}")

    feeder = asyncio.ensure_future(steadily(15))
    steady = [await read(deadline) for _ in range(15)]
    await feeder
    deadline.stop()
    deadline = ReadDeadline(0.3)
    try:
        await read(deadline)
        timed_out = None
    except asyncio.CancelledError:
        timed_out = "TimeoutError" if deadline.expired() else "CancelledError"
    deadline.stop()
    return {"frames": frames, "steady": steady, "timed_out": timed_out}

print(json.dumps(asyncio.run(main())))
'''


# The same reads with the deadlines checked by a server's sweep (one timer for every websocket
# of a server: the asyncio worker's way) instead of a timer per websocket.
ASYNCIO_SWEPT = ASYNCIO.replace(
    "import ReadDeadline", "import DeadlineSweep, ReadDeadline").replace(
    "ReadDeadline(1.0)", "ReadDeadline(1.0, DeadlineSweep(1.0))").replace(
    "ReadDeadline(0.3)", "ReadDeadline(0.3, DeadlineSweep(0.3))")


@pytest.mark.parametrize("script", [EVENTLET, ASYNCIO, ASYNCIO_SWEPT],
                         ids=["eventlet", "asyncio", "asyncio-sweep"])
def test_websocket_reads(script: str) -> None:
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["frames"] == [f"m{n}" for n in range(50)] + ["split"]
    assert seen["steady"] == [f"s{n}" for n in range(15)]
    assert seen["timed_out"] == "TimeoutError"


PARKED = r'''
import warnings
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet
eventlet.monkey_patch()
import json
import socket
import websocket
from eventlet.hubs import get_hub
from eventlet.websocket import RFC6455WebSocket
from sioctl.worker import ws_reads

def frame(text):
    return websocket.ABNF.create_frame(text, websocket.ABNF.OPCODE_TEXT).format()

hub = get_hub()
ours, theirs = socket.socketpair()
fd = ours.fileno()
ws = RFC6455WebSocket(ours, {}, 13)
ws_reads.buffer_reads(ws)
ws.socket.settimeout(5.0)
seen = {}

def later(text):
    eventlet.sleep(0.05)
    theirs.sendall(frame(text))

eventlet.spawn(later, "a")
seen["a"] = ws.wait()  # waited for: the listener is parked from then on
listener = hub.listeners[hub.READ].get(fd)
seen["parked"] = listener is not None
eventlet.spawn(later, "b")
seen["b"] = ws.wait()
seen["same_listener"] = hub.listeners[hub.READ].get(fd) is listener
# The reader busy elsewhere when the fd turns readable: the listener leaves the epoll set
# (or the hub would spin on the fd), and the frame is read at the next wait all the same.
theirs.sendall(frame("c"))
eventlet.sleep(0.1)
seen["dropped_while_busy"] = fd not in hub.listeners[hub.READ]
seen["c"] = ws.wait()
# Another green thread reading the same fd meets eventlet's one-reader rule, as before.
eventlet.spawn(later, "d")
seen["d"] = ws.wait()
theirs.close()
seen["end"] = ws.wait()
seen["released_at_end"] = fd not in hub.listeners[hub.READ]
print(json.dumps(seen))
'''


def test_eventlet_websocket_fd_stays_registered_between_reads() -> None:
    """On eventlet the websocket's read listener stays with the hub between reads (no
    epoll_ctl pair per wait), leaves it when the fd turns readable while the reader is busy
    elsewhere (the hub must not spin on it), and is gone once the peer has closed."""
    proc = subprocess.run([sys.executable, "-c", PARKED], capture_output=True, text=True,
                          timeout=60, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [seen[k] for k in "abcd"] == ["a", "b", "c", "d"]
    assert seen["parked"] and seen["same_listener"]
    assert seen["dropped_while_busy"]
    assert seen["end"] is None and seen["released_at_end"]


FRAMES = r'''
import warnings
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet
eventlet.monkey_patch()
import json
import socket
import websocket
from websocket import ABNF
from eventlet.websocket import RFC6455WebSocket
from sioctl.worker import ws_reads, ws_mask

ws_mask.install(RFC6455WebSocket)

def frame(data, opcode, fin=1):
    data = data.encode("utf-8") if isinstance(data, str) else data
    return ABNF(fin, 0, 0, 0, opcode, 1, data).format()

ours, theirs = socket.socketpair()
ws = RFC6455WebSocket(ours, {}, 13, max_frame_length=1000)
ws_reads.buffer_reads(ws)
ws.socket.settimeout(5.0)
fast = []

def next_message():
    got = ws.socket.take_frame(ws.max_frame_length)
    fast.append(got is not ws_reads.NOT_SIMPLE)
    return ws.wait() if got is ws_reads.NOT_SIMPLE else got

theirs.sendall(b"".join([
    frame("hello", ABNF.OPCODE_TEXT),
    frame(b"\x00\x01\xff", ABNF.OPCODE_BINARY),
    frame("", ABNF.OPCODE_TEXT),
    frame("\u00e9" * 150, ABNF.OPCODE_TEXT),          # 300 bytes: a 16-bit length
    frame("ping!", ABNF.OPCODE_PING),                # control: eventlet answers a pong
    frame("after ping", ABNF.OPCODE_TEXT),
    frame("frag", ABNF.OPCODE_TEXT, fin=0),           # a fragmented message
    frame("mented", ABNF.OPCODE_CONT),
    frame("x" * 1001, ABNF.OPCODE_TEXT),              # over max_frame_length: 1009
]))
seen = [next_message() for _ in range(7)]
theirs.settimeout(5)
replies = theirs.recv(4096)
print(json.dumps({"seen": seen[:1] + [list(seen[1])] + seen[2:], "fast": fast,
                  "pong": replies[:1] == b"\x8a", "close_1009": b"\x88" in replies
                  and b"\x03\xf1" in replies}))
'''


def test_whole_simple_frames_are_read_off_the_buffer_and_the_rest_by_eventlet() -> None:
    """ws_reads.BufferedReads.take_frame reads a whole unfragmented text or binary frame
    itself and leaves every other frame to eventlet's reader, which answers them as before: a
    ping gets its pong, a fragmented message is joined, a frame over the limit closes with
    1009 (the end of the stream: None)."""
    proc = subprocess.run([sys.executable, "-c", FRAMES], capture_output=True, text=True,
                          timeout=60, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["seen"] == ["hello", [0, 1, 255], "", "\u00e9" * 150, "after ping",
                            "fragmented", None]
    assert seen["fast"] == [True, True, True, True, False, False, False]
    assert seen["pong"] and seen["close_1009"]


WRITES = r'''
import warnings
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet
eventlet.monkey_patch()
import json
import logging
import socket
import sys
import types
from eventlet.websocket import RFC6455WebSocket
from sioctl.worker import ws_reads

ours, theirs = socket.socketpair()
for sock in (ours, theirs):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
if len(sys.argv) > 1:  # TLS: the certificate and key files
    from tests.support.certificates import green_tls_pair
    ours, theirs = green_tls_pair(ours, theirs, sys.argv[1], sys.argv[2])
lines = []
logger = logging.getLogger("owner")
logger.setLevel(logging.INFO)
logger.addHandler(type("H", (logging.Handler,), {"emit": lambda self, r:
                                                 lines.append(r.getMessage())})())
owner = types.SimpleNamespace(sid="s1", server=types.SimpleNamespace(logger=logger))
ws = RFC6455WebSocket(ours, {}, 13)
ws_reads.buffer_reads(ws, owner)
ws.socket.settimeout(0.5)
seen = {"tls": ws.socket.raw is None}
payload = "x" * 300_000
FRAME = len(payload) + 10  # a 64-bit length, no mask

def read_slowly():
    got = 0
    while got < FRAME:
        eventlet.sleep(0.02)  # 4 KiB per 20 ms: the whole frame takes ~1.5 s, 3 spans
        got += len(theirs.recv(4096))
    return got

reader = eventlet.spawn(read_slowly)
ws.send(payload)
seen["slow_read"] = reader.wait() == FRAME
try:
    ws.send(payload)  # nobody reads
    seen["silent"] = None
except OSError as exc:
    seen["silent"] = type(exc).__name__
try:
    ws.send("after")  # under TLS eventlet drops it (the shutdown let go of the TLS layer)
    seen["after"] = "dropped"
except OSError as exc:
    seen["after"] = "failed"
seen["read_end"] = ws.socket.recv(10).hex()  # shut down: the reads end too
seen["lines"] = lines
print(json.dumps(seen))
'''


def run_script(script: str, args: list[str], timeout: float) -> dict[str, Any]:
    """What ``script`` printed as its last line (JSON), run with ``args`` in a child
    interpreter that must end well within ``timeout`` seconds."""
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return seen


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_an_eventlet_websocket_write_that_makes_no_progress_drops_the_connection(
        tls: bool, request: pytest.FixtureRequest) -> None:
    """A write through ws_reads.BufferedReads waits for a client that reads slowly (progress
    starts a new wait: the whole frame takes three spans), and one that reads nothing ends
    with a timeout after the span: the socket shut down (the next write ends at once, the
    reads end), logged once with the session's id. Plain socket and TLS (each wait for room
    the span at most, the reads keeping their own limit)."""
    args = list(request.getfixturevalue("certificate")) if tls else []
    seen = run_script(WRITES, args, 60)
    assert seen["tls"] is tls
    assert seen["slow_read"]
    assert seen["silent"] == "TimeoutError"
    assert seen["after"] == ("dropped" if tls else "failed")  # at once, either way
    assert seen["read_end"] == ""
    assert seen["lines"] == ["s1: the client read nothing for 0.5s, dropping the connection"]


STEADY = r'''
import warnings
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet
eventlet.monkey_patch()
import json
import socket
import sys
import time
import types
from eventlet.websocket import RFC6455WebSocket
from sioctl.worker import ws_reads

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
theirs = socket.socket()
theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
theirs.connect(listener.getsockname())
ours, _ = listener.accept()
listener.close()
if len(sys.argv) > 1:  # TLS: the certificate and key files
    from tests.support.certificates import green_tls_pair
    ours, theirs = green_tls_pair(ours, theirs, sys.argv[1], sys.argv[2])
lines = []
logger = types.SimpleNamespace(info=lambda *args: lines.append(args[0] % args[1:]))
owner = types.SimpleNamespace(sid="s1", server=types.SimpleNamespace(logger=logger))
ws = RFC6455WebSocket(ours, {}, 13)
ws_reads.buffer_reads(ws, owner)
ws.socket.settimeout(0.3)
FRAMES, SIZE = 5, 1_000_000
TOTAL = FRAMES * (SIZE + 10)  # a 64-bit length each, no mask

def read_steadily():
    got = 0
    for _ in range(100_000):  # bounded
        if got >= TOTAL:
            break
        eventlet.sleep(0.02)  # at most 16 KiB per 20 ms: ~0.25 MB a span, less than the
        chunk = theirs.recv(16384)  # kernel must see read to wake a writer waiting for room
        if not chunk:
            break
        got += len(chunk)
    return got

reader = eventlet.spawn(read_steadily)
started = time.monotonic()
sent = 0
try:
    for _ in range(FRAMES):
        ws.send("x" * SIZE)
        sent += 1
    error = None
except OSError as exc:
    error = type(exc).__name__
got = reader.wait()
print(json.dumps({"tls": ws.socket.raw is None, "sent": sent, "error": error,
                  "got": got == TOTAL, "lines": lines, "took": time.monotonic() - started}))
'''


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_an_eventlet_websocket_write_waits_for_a_client_that_reads_steadily(
        tls: bool, request: pytest.FixtureRequest) -> None:
    """A client that reads a few KB at a time, steadily but less in a span than Linux must
    see read before it wakes a writer waiting for room (a good part of a send buffer that
    grows to 4 MB), while 5 MB are written to it through ws_reads.BufferedReads: it gets
    every byte and nothing is dropped (the kernel's send queue shrinks between two looks:
    write_stall.SendWatch), over TCP and under TLS. A wait that ended without room used to
    be taken for a client that reads nothing."""
    args = list(request.getfixturevalue("certificate")) if tls else []
    seen = run_script(STEADY, args, 120)
    assert seen["tls"] is tls
    assert (seen["sent"], seen["error"], seen["got"], seen["lines"]) == (5, None, True, [])
    # The test's own pace, which must outlast the span for the test to show anything.
    assert seen["took"] > 0.3, seen
