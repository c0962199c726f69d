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


@pytest.mark.parametrize("script", [EVENTLET, ASYNCIO], ids=["eventlet", "asyncio"])
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
