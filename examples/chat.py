"""The demo: a chat room served by every worker of a sioctl cluster.

Each message says which worker slot received it, so two browsers (or two clients bound to
different source addresses) show messages crossing workers through Redis.

    sioctl start --sticky -w 2 -b 127.0.0.1:7001 --chdir examples chat:app
"""

import os

import socketio

sio = socketio.Server(cors_allowed_origins="*")
here = os.path.dirname(os.path.abspath(__file__))
client_js = os.path.join(
    here, "..", "tests", "js", "node_modules", "socket.io-client", "dist", "socket.io.min.js"
)
app = socketio.WSGIApp(
    sio,
    static_files={
        "/": os.path.join(here, "index.html"),
        "/socket.io.min.js": client_js,
    },
)


def worker_name() -> str:
    return f"slot {os.environ.get('SIOCTL_WORKER_SLOT', '?')} (pid {os.getpid()})"


@sio.event
def connect(sid, environ):
    sio.save_session(sid, {"addr": environ.get("REMOTE_ADDR")})
    sio.emit("served_by", {"worker": worker_name()}, to=sid)


@sio.event
def say(sid, text):
    session = sio.get_session(sid)
    sio.emit("said", {"from": session["addr"], "worker": worker_name(), "text": str(text)[:500]})
    return "ok"
