"""One plain python-socketio process on eventlet, as its documentation deploys it.

    python tests/bench/pyserve.py PORT [--redis URL] [--max-size N]

Serves tests/bench/apps/bench_app.py on 127.0.0.1:PORT with eventlet.wsgi, with
python-socketio's stock RedisManager when --redis is given (the nginx scale-out) and its
in-memory manager otherwise (the single-process system). Runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from pathlib import Path

# eventlet warns about its own deprecation on import; the benchmark's logs need not say so.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402

# python-socketio's RedisManager refuses to run under eventlet without a patched socket.
eventlet.monkey_patch()

import eventlet.wsgi  # noqa: E402
import socketio  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.bench.apps.bench_app import build  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--redis", default=None, help="RedisManager URL (default: in-memory)")
    # eventlet.wsgi serves at most 1024 connections at once unless told otherwise; the idle
    # scenario holds 10k, as a user who needs that many would configure.
    parser.add_argument("--max-size", type=int, default=20000)
    args = parser.parse_args(argv)
    manager = socketio.RedisManager(args.redis) if args.redis else None
    sio = build(manager, async_mode="eventlet")
    # SO_REUSEPORT off: a stale server on the same port must not share the connections.
    listener = eventlet.listen(("127.0.0.1", args.port), backlog=2048, reuse_port=False)
    # eventlet.wsgi.server() would wait for every open websocket before returning: leave now.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        eventlet.wsgi.server(listener, socketio.WSGIApp(sio), log_output=False,
                             max_size=args.max_size)
    except (SystemExit, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
