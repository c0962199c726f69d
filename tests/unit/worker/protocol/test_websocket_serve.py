"""The eventlet websocket's writer starts on demand (worker/protocol/websocket_serve.py,
issue 19): no green thread waits on an idle session's queue, and what is queued still reaches
the socket in order, whoever queues it (a green thread, or the hub as a ping timer does); once
the reader ends, what was queued before goes out, then the close frame, and nothing after it.

eventlet runs in a child interpreter (it must monkey-patch first), with a real eventlet queue
behind the worker's session queue and a real eventlet websocket on a socketpair; the script
prints what the peer read and how many green threads waited on the queue, as one JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import REPO_ROOT

SCRIPT = r'''
import warnings
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet
eventlet.monkey_patch()
import json
import socket
import types
import engineio
from engineio import packet
from eventlet.hubs import get_hub
from eventlet.websocket import RFC6455WebSocket
from sioctl.worker.protocol.ping_interval import _ExactPingIntervalQueue
from sioctl.worker.protocol.websocket_serve import LazyWriter

server = engineio.Server(async_mode="eventlet")
ours, theirs = socket.socketpair()
ws = RFC6455WebSocket(ours, {}, 13)
queue = _ExactPingIntervalQueue(server.create_queue(), server)
session = types.SimpleNamespace(queue=queue, server=server)
writer = LazyWriter(session, ws)
queue.writer = writer

def read_frames(count):
    """The text (or 'CLOSE') of the next ``count`` server frames (unmasked, short)."""
    seen = []
    while len(seen) < count:
        head = theirs.recv(2, socket.MSG_WAITALL)
        payload = theirs.recv(head[1] & 0x7F, socket.MSG_WAITALL) if head[1] & 0x7F else b""
        seen.append("CLOSE" if head[0] & 0x0F == 8 else payload.decode())
    return seen

def waiting_on_queue():
    eventlet.sleep(0.05)  # whatever was started has run
    return queue._queue.getting()

seen = {"idle_getters": waiting_on_queue()}
for n in range(5):
    queue.put(packet.Packet(packet.MESSAGE, f"m{n}"))
seen["burst"] = read_frames(5)
seen["getters_after_burst"] = waiting_on_queue()
get_hub().schedule_call_global(0, queue.put, packet.Packet(packet.PING))  # as a ping timer
seen["from_hub"] = read_frames(1)
seen["getters_after_ping"] = waiting_on_queue()
queue.put(packet.Packet(packet.MESSAGE, "last"))
writer.finish()  # the reader has ended
queue.put(packet.Packet(packet.MESSAGE, "after"))
seen["end"] = read_frames(2)
theirs.settimeout(0.3)
try:
    seen["after_close"] = theirs.recv(100).decode()
except socket.timeout:
    seen["after_close"] = None
print(json.dumps(seen))
'''


def test_the_writer_runs_only_while_something_is_queued() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=60, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["idle_getters"] == 0
    assert seen["burst"] == [f"4m{n}" for n in range(5)]
    assert seen["getters_after_burst"] == 0
    assert seen["from_hub"] == ["2"]
    assert seen["getters_after_ping"] == 0
    assert seen["end"] == ["4last", "CLOSE"]
    assert seen["after_close"] in (None, "")
