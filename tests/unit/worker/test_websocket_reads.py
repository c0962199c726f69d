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
