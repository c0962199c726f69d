"""An eventlet websocket's messages read without its generator (worker/protocol/
websocket_serve.py ``eventlet_message_reader``, issue 19: memory per idle websocket) are what
eventlet's own ``wait()`` reads: the same messages from the same frames (a fragmented message
assembled, a ping answered with a pong between two messages), None at the client's close, and
the same frames written back.

eventlet runs in a child interpreter (it must monkey-patch first): the script feeds the same
frames to two websockets, one read with ``wait()`` and one with the reader, and prints what
each read and what each wrote back, as one JSON line.
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
import websocket
from eventlet.websocket import RFC6455WebSocket
from sioctl.worker.protocol.websocket_serve import eventlet_message_reader

ABNF = websocket.ABNF
FRAMES = b"".join(f.format() for f in (
    ABNF.create_frame("a", ABNF.OPCODE_TEXT),
    ABNF.create_frame("", ABNF.OPCODE_PING),
    ABNF(0, 0, 0, 0, ABNF.OPCODE_TEXT, 1, b"b"),
    ABNF(1, 0, 0, 0, ABNF.OPCODE_CONT, 1, b"c"),
    ABNF.create_frame(b"\x01\x02", ABNF.OPCODE_BINARY),
    ABNF.create_frame(b"\x03\xe8", ABNF.OPCODE_CLOSE),
))

def run(read):
    ours, theirs = socket.socketpair()
    ws = RFC6455WebSocket(ours, {}, 13)
    theirs.sendall(FRAMES)
    seen = []
    for _ in range(6):
        message = read(ws)
        seen.append(message.hex() if isinstance(message, bytes) else message)
        if message is None:
            break
    theirs.settimeout(5)
    written = b""
    while chunk := theirs.recv(65536):
        written += chunk
    return {"messages": seen, "written": written.hex()}

def read_with_reader(ws):
    reader = ws.__dict__.setdefault("reader", eventlet_message_reader(ws))
    return reader(ws)

print(json.dumps({"wait": run(lambda ws: ws.wait()), "reader": run(read_with_reader),
                  "no_reader_for_other": eventlet_message_reader(object()) is None}))
'''


def test_messages_are_read_as_wait_reads_them() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["wait"]["messages"] == ["a", "bc", "0102", None], seen
    assert seen["reader"] == seen["wait"], seen
    # A pong (for the ping) and the close frame went back.
    assert seen["reader"]["written"].startswith("8a00"), seen
    assert seen["no_reader_for_other"] is True
