#!/usr/bin/env python3
"""A second chatter for the demo (scripts/demo.sh), from another source address.

sioctl sends every connection from one client address to the same worker, so a browser on
http://127.0.0.1:7001 and a second browser on the same machine share a worker. Any address in
127.0.0.0/8 is this machine too: this client connects from one of them that the master sends to
*another* worker than 127.0.0.1's (it asks /whoami from each address until the answer differs),
so what it says reaches the browser through Redis, and the page shows the other worker's slot.

    .venv/bin/python scripts/demo-client.py --name bob              # chat from the terminal
    .venv/bin/python scripts/demo-client.py --name bob --say hello  # say it and leave

It speaks long-polling only: the websocket library it would use has no source-address option.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any
from urllib.parse import urlencode

import requests
import socketio
from requests.adapters import HTTPAdapter

BROWSER_ADDRESS = "127.0.0.1"
CANDIDATES = [f"127.0.0.{i}" for i in range(2, 255)]


class SourceAddress(HTTPAdapter):
    """Connections that leave from ``source`` instead of the default address."""

    def __init__(self, source: str) -> None:
        self.source = source  # read by init_poolmanager, which HTTPAdapter's init calls
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(source: str) -> requests.Session:
    """A requests session whose connections come from ``source``."""
    session = requests.Session()
    for prefix in ("http://", "https://"):
        session.mount(prefix, SourceAddress(source))
    return session


def whoami(url: str, source: str) -> str:
    """Which worker answers ``source`` ("slot 1 (pid 4242)")."""
    with session_from(source) as session:
        answer = session.get(url.rstrip("/") + "/whoami", timeout=10)
        answer.raise_for_status()
        return answer.text.strip()


def slot_of(worker: str) -> str:
    return worker.split(" (")[0]


def pick_source(url: str) -> tuple[str, str, str]:
    """(address, its worker, 127.0.0.1's worker): the first address of CANDIDATES served by
    another slot than 127.0.0.1 (the same one when the cluster has a single worker)."""
    browser = whoami(url, BROWSER_ADDRESS)
    for source in CANDIDATES[:32]:
        worker = whoami(url, source)
        if slot_of(worker) != slot_of(browser):
            return source, worker, browser
    return CANDIDATES[0], whoami(url, CANDIDATES[0]), browser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7001", help="the demo's address")
    parser.add_argument("--name", default="terminal", help="your name in the chat")
    parser.add_argument("--source", help="source address (default: one on another worker)")
    parser.add_argument("--say", action="append", default=[],
                        help="say this and leave once it came back (repeatable)")
    args = parser.parse_args(argv)

    if args.source:
        source, worker, browser = args.source, whoami(args.url, args.source), None
    else:
        source, worker, browser = pick_source(args.url)
    print(f"{args.name}: connecting from {source}, served by {worker}"
          + (f"; a browser on {BROWSER_ADDRESS} is served by {browser}" if browser else ""),
          flush=True)

    own_echoes = threading.Semaphore(0)
    client = socketio.Client(http_session=session_from(source), reconnection=not args.say)

    @client.on("said")
    def said(message: dict[str, Any]) -> None:
        sender = message.get("from")
        where = f" via {message['worker']}" if message.get("worker") else ""
        print(f"{sender}{where}: {message.get('text')}", flush=True)
        if sender == args.name and message.get("worker"):
            own_echoes.release()

    # The demo's nickname middleware reads the name from the query string.
    query = urlencode({"name": args.name})
    client.connect(f"{args.url}?{query}", transports=["polling"], wait_timeout=10)
    try:
        if args.say:
            for text in args.say:
                if client.call("say", text, timeout=10) != "ok":
                    print(f"not said: {text}", file=sys.stderr)
                    return 1
            for _ in args.say:  # every message went out to every worker, this one included
                if not own_echoes.acquire(timeout=10):
                    print("a message did not come back within 10 s", file=sys.stderr)
                    return 1
            return 0
        print("type a line to say it; Ctrl-D leaves", flush=True)
        for line in sys.stdin:
            if line.strip():
                client.emit("say", line.rstrip("\n"))
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        client.disconnect()


if __name__ == "__main__":
    sys.exit(main())
