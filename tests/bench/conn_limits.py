"""Issue 13 items 3 and 4 at the issue's scale: idle, slow and surplus connections to a worker.

    python tests/bench/conn_limits.py [--only idle keepalive slow overflow]

Each scenario starts its own `sioctl start` cluster (tests.apps.chat:sio, in-memory manager, or
an embedded Redis with two workers), drives it with plain sockets from one selector loop, prints
one JSON line of figures and stops the cluster. Every wait is bounded (at most ~40 s a scenario).

- idle: 1010 silent TCP sockets from 127.0.0.2 against one worker's 1000 connections, then one
  real client (an Engine.IO handshake from 127.0.0.3): served or not, and how many idle sockets
  were closed within 12 s.
- keepalive: one keep-alive connection after a request: seconds until the worker closed it.
- slow: 500 slow-header sockets (a header line a second, never the blank line) and one TLS
  ClientHello on the plain port: seconds each was held.
- overflow: 2,500 websocket upgrades (50 source addresses) against two workers of 1000
  connections each: how many were upgraded (101), refused (503), closed, or hung for 20 s; the
  refused count in status, and the log lines about it.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sioctl.cluster.control import ControlError, request  # noqa: E402
from tests.support.clients import free_port, partial_client_hello  # noqa: E402

HANDSHAKE = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n"
UPGRADE = (b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


class Cluster:
    def __init__(self, workers: int, *args: str) -> None:
        self.port = free_port()
        self.base = tempfile.mkdtemp(prefix="sio")
        self.title = f"b{self.port}"
        self.log = Path(self.base) / "cluster.log"
        command = [sys.executable, "-m", "sioctl", "start", "tests.apps.chat:sio", "-w",
                   str(workers), "-b", f"127.0.0.1:{self.port}", "--run-dir", self.base,
                   "--title", self.title, *args]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = self.status()
            if status and all(s.get("state") == "ready" for s in status["slots"]):
                return
            time.sleep(0.2)
        raise RuntimeError("cluster not ready:\n" + self.log.read_text())

    def status(self) -> dict[str, Any] | None:
        try:
            return request(os.path.join(self.base, self.title, "control.sock"),
                           {"cmd": "status"}, timeout=5)
        except (ControlError, OSError):
            return None

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        text = self.log.read_text(errors="replace")
        shutil.rmtree(self.base, ignore_errors=True)
        return text


def connect(port: int, source_ip: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source_ip, 0))
    sock.setblocking(False)
    return sock


def closed(sock: socket.socket) -> bool:
    """True once the peer has closed ``sock`` (anything it sent is read and dropped)."""
    try:
        while True:
            if not sock.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def watch_closes(socks: list[socket.socket], limit: float,
                 tick: Any = None) -> list[float | None]:
    """Seconds until each socket was closed by the server (None: still open after limit)."""
    started = time.monotonic()
    result: list[float | None] = [None] * len(socks)
    sel = selectors.DefaultSelector()
    for i, sock in enumerate(socks):
        sel.register(sock, selectors.EVENT_READ, i)
    open_count = len(socks)
    while open_count and time.monotonic() - started < limit:
        if tick is not None:
            tick()
        for key, _ in sel.select(0.2):
            if closed(key.fileobj):  # type: ignore[arg-type]
                result[key.data] = time.monotonic() - started
                sel.unregister(key.fileobj)
                open_count -= 1
    sel.close()
    return result


def scenario_idle() -> dict[str, Any]:
    cluster = Cluster(1)
    idle = [connect(cluster.port, "127.0.0.2") for _ in range(1010)]
    try:
        time.sleep(1.0)
        started = time.monotonic()
        served, answer = False, ""
        try:
            with socket.create_connection(("127.0.0.1", cluster.port), timeout=10,
                                          source_address=("127.0.0.3", 0)) as real:
                real.sendall(HANDSHAKE)
                answer = real.recv(200).decode("latin1").split("\r\n")[0]
                served = answer.endswith("200 OK")
        except OSError as exc:
            answer = f"{type(exc).__name__}: {exc}"
        waited = time.monotonic() - started
        closes = watch_closes(idle, 12.0)
        return {"scenario": "idle", "idle_sockets": len(idle), "worker_connections": 1000,
                "real_client_served": served, "real_client_answer": answer,
                "real_client_seconds": round(waited, 3),
                "idle_closed_within_12s": sum(1 for c in closes if c is not None)}
    finally:
        for sock in idle:
            sock.close()
        cluster.stop()


def scenario_keepalive() -> dict[str, Any]:
    cluster = Cluster(1)
    try:
        sock = connect(cluster.port, "127.0.0.2")
        sock.setblocking(True)
        sock.sendall(HANDSHAKE)
        head = sock.recv(65536)
        sock.setblocking(False)
        held = watch_closes([sock], 15.0)[0]
        sock.close()
        return {"scenario": "keepalive", "keepalive_setting": 2.0,
                "first_answer": head.split(b"\r\n")[0].decode(),
                "closed_after_s": None if held is None else round(held, 2),
                "limit_s": 15.0}
    finally:
        cluster.stop()



def scenario_slow() -> dict[str, Any]:
    cluster = Cluster(1)
    slow = [connect(cluster.port, "127.0.0.2") for _ in range(500)]
    for sock in slow:
        sock.send(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n")
    hello = connect(cluster.port, "127.0.0.3")
    hello.send(partial_client_hello())
    last = [time.monotonic()]

    def trickle() -> None:
        if time.monotonic() - last[0] >= 1.0:
            last[0] = time.monotonic()
            for sock in slow:
                try:
                    sock.send(b"X-Slow: 1\r\n")
                except OSError:
                    pass

    try:
        closes = watch_closes([*slow, hello], 35.0, trickle)
        slow_held = [c for c in closes[:-1] if c is not None]
        return {"scenario": "slow", "slow_sockets": len(slow), "limit_s": 35.0,
                "slow_closed": len(slow_held),
                "slow_held_median_s": round(statistics.median(slow_held), 2) if slow_held
                else None,
                "slow_held_max_s": round(max(slow_held), 2) if slow_held else None,
                "tls_hello_held_s": None if closes[-1] is None else round(closes[-1], 2)}
    finally:
        for sock in (*slow, hello):
            sock.close()
        cluster.stop()


def scenario_overflow() -> dict[str, Any]:
    cluster = Cluster(2)
    ips = [f"127.0.0.{i}" for i in range(2, 52)]
    socks = []
    for i in range(2500):
        sock = connect(cluster.port, ips[i % len(ips)])
        sock.send(UPGRADE)
        socks.append(sock)
    outcome: dict[int, str] = {}
    sel = selectors.DefaultSelector()
    for i, sock in enumerate(socks):
        sel.register(sock, selectors.EVENT_READ, i)
    started = time.monotonic()
    try:
        while len(outcome) < len(socks) and time.monotonic() - started < 20.0:
            for key, _ in sel.select(0.2):
                sock = key.fileobj
                try:
                    data = sock.recv(4096)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                status = data.split(b"\r\n", 1)[0]
                outcome[key.data] = ("upgraded" if b" 101 " in status else "refused"
                                     if b" 503 " in status else "closed" if not data
                                     else status.decode("latin1"))
                sel.unregister(sock)
        counts: dict[str, int] = {}
        for i in range(len(socks)):
            kind = outcome.get(i, "hung_20s")
            counts[kind] = counts.get(kind, 0) + 1
        time.sleep(1.5)  # the workers' next heartbeat carries their refused counts
        status = cluster.status() or {}
        slots = [{k: s.get(k) for k in ("slot", "connections", "pending", "dropped", "refused")}
                 for s in status.get("slots", [])]
    finally:
        sel.close()
        for sock in socks:
            sock.close()
        log = cluster.stop()
    lines = [line for line in log.splitlines() if "refus" in line.lower()]
    return {"scenario": "overflow", "websocket_connects": len(socks), "outcomes": counts,
            "slots": slots, "log_lines_about_refusals": len(lines),
            "first_log_line": lines[0][:200] if lines else None}


SCENARIOS = {"idle": scenario_idle, "keepalive": scenario_keepalive, "slow": scenario_slow,
             "overflow": scenario_overflow}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), default=list(SCENARIOS))
    args = parser.parse_args()
    for name in args.only:
        print(json.dumps(SCENARIOS[name]()), flush=True)


if __name__ == "__main__":
    main()
