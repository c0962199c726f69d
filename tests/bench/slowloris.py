"""Slowloris against the master's client-address inspection (issue 13, item 5).

Starts ``sioctl start`` (2 workers) with ``--forwarded-allow-ips 127.0.0.1`` (mode ``xff``) or
``--proxy-protocol`` (mode ``proxy``), holds N sockets that never finish their head (they send
part of it, then one byte a second each; one closed by the master is opened again), and
meanwhile measures:

- the master's CPU (``/proc/<pid>/stat``) over the measuring window, as a share of one core;
- connect-to-first-response latency of fresh clients (a complete polling handshake request,
  with ``X-Forwarded-For`` or a PROXY header), p50 and max, and how many got no answer;
- what the master counted (``status`` ``inspection``).

    python tests/bench/slowloris.py --mode xff --sockets 0 500 1500
    python tests/bench/slowloris.py --mode proxy --sockets 500 1500 --peers 1500

In ``xff`` mode the slow sockets come from 127.0.0.1 (only the trusted proxy's connections are
inspected); in ``proxy`` mode they come from ``--peers`` addresses 127.0.x.y (every connection
is inspected). Fresh clients come from 127.0.0.1 (xff) or 127.0.x.y addresses (proxy). Bounded:
every phase lasts ``--warmup`` + ``--measure`` seconds, every socket is closed at the end, the
cluster is stopped. Reports numbers; never passes or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from procstat import cpu_seconds

from sioctl.cluster.control import ControlError, request

REPO_ROOT = Path(__file__).resolve().parents[2]

REQUEST_LINE = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: bench\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peer_address(i: int) -> str:
    """The i-th source address 127.0.x.y (x from 10, y 1..250): never 127.0.0.1."""
    return f"127.0.{10 + i // 250}.{1 + i % 250}"


class Cluster:
    """``sioctl start`` on a free 127.0.0.1 port; stopped (with its process group) on exit."""

    def __init__(self, mode: str, log_dir: Path) -> None:
        self.port = free_port()
        self.title = f"slow{self.port}"
        self.run_dir = tempfile.mkdtemp(prefix="sios")
        self.control = os.path.join(self.run_dir, self.title, "control.sock")
        extra = (["--forwarded-allow-ips", "127.0.0.1"] if mode == "xff"
                 else ["--proxy-protocol"])
        argv = [sys.executable, "-m", "sioctl", "start", "tests.bench.apps.bench_app:sio",
                "-w", "2", "-b", f"127.0.0.1:{self.port}", "--run-dir", self.run_dir,
                "--title", self.title, "--graceful-timeout", "2", "--log-level", "warning",
                *extra]
        self.log_path = log_dir / f"slowloris-{self.port}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            status = self.status()
            if status and status.get("state") == "running":
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the cluster did not start: see {self.log_path}")

    def status(self) -> dict[str, Any] | None:
        try:
            return request(self.control, {"cmd": "status"}, timeout=2.0)
        except (ControlError, OSError):
            return None

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        shutil.rmtree(self.run_dir, ignore_errors=True)


class Slowloris(threading.Thread):
    """Holds ``count`` sockets that each send part of a head, then a byte a second; a socket
    the server closes is replaced at the next round."""

    def __init__(self, port: int, mode: str, count: int, peers: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.mode, self.count, self.peers, self.stop = port, mode, count, peers, stop
        self.selector = selectors.DefaultSelector()
        self.opened = 0
        self.closed_by_server = 0
        self.connect_errors = 0
        self.held = 0

    def _open(self, i: int) -> socket.socket | None:
        source = "127.0.0.1" if self.mode == "xff" else peer_address(i % self.peers)
        sock = socket.socket()
        try:
            sock.bind((source, 0))
            sock.settimeout(2)
            sock.connect(("127.0.0.1", self.port))
            sock.sendall(REQUEST_LINE if self.mode == "xff" else b"PROXY TCP4 ")
            sock.setblocking(False)
        except OSError:
            sock.close()
            self.connect_errors += 1
            return None
        self.opened += 1
        self.selector.register(sock, selectors.EVENT_READ, i)
        return sock

    def run(self) -> None:
        sockets: dict[int, socket.socket | None] = {}
        try:
            while not self.stop.is_set():
                round_end = time.monotonic() + 1.0
                for i in range(self.count):
                    sock = sockets.get(i)
                    if sock is None:
                        sockets[i] = sock = self._open(i)
                    elif not self._trickle(sock):
                        sockets[i] = None
                    if self.stop.is_set():
                        return
                self.held = sum(1 for s in sockets.values() if s is not None)
                # Notice the ones the server closed while waiting for the next round.
                while (left := round_end - time.monotonic()) > 0 and not self.stop.is_set():
                    for key, _ in self.selector.select(min(left, 0.2)):
                        sock = key.fileobj  # type: ignore[assignment]
                        if not self._alive(sock):
                            sockets[key.data] = None
        finally:
            for sock in sockets.values():
                if sock is not None:
                    sock.close()
            self.selector.close()

    def _trickle(self, sock: socket.socket) -> bool:
        try:
            sock.send(b"x" if self.mode == "xff" else b"1")
            return True
        except OSError:
            self._drop(sock)
            return False

    def _alive(self, sock: socket.socket) -> bool:
        try:
            if sock.recv(4096):
                return True
        except BlockingIOError:
            return True
        except OSError:
            pass
        self._drop(sock)
        return False

    def _drop(self, sock: socket.socket) -> None:
        self.closed_by_server += 1
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)
        sock.close()


def fresh_client(port: int, mode: str, n: int, timeout: float = 5.0) -> float | None:
    """Seconds from connect() to the first response byte of a new polling handshake; None if
    no answer came within ``timeout``."""
    source = "127.0.0.1" if mode == "xff" else peer_address(5000 + n % 2000)
    client = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
    if mode == "xff":
        data = REQUEST_LINE + f"X-Forwarded-For: {client}\r\n\r\n".encode()
    else:
        data = f"PROXY TCP4 {client} 127.0.0.1 40000 {port}\r\n".encode() + REQUEST_LINE + b"\r\n"
    sock = socket.socket()
    try:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        start = time.perf_counter()
        sock.connect(("127.0.0.1", port))
        sock.sendall(data)
        if not sock.recv(1):
            return None
        return time.perf_counter() - start
    except OSError:
        return None
    finally:
        sock.close()


def phase(mode: str, count: int, peers: int, warmup: float, measure: float,
          interval: float, log_dir: Path) -> dict[str, Any]:
    cluster = Cluster(mode, log_dir)
    stop = threading.Event()
    attack = Slowloris(cluster.port, mode, count, peers, stop)
    try:
        attack.start()
        time.sleep(warmup)
        cpu0, t0 = cpu_seconds(cluster.proc.pid), time.monotonic()
        latencies: list[float] = []
        failed = 0
        n = 0
        while time.monotonic() - t0 < measure:
            took = fresh_client(cluster.port, mode, n)
            n += 1
            if took is None:
                failed += 1
            else:
                latencies.append(took)
            time.sleep(interval)
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds(cluster.proc.pid) - cpu0) / elapsed
        status = cluster.status() or {}
        held = attack.held
    finally:
        stop.set()
        attack.join(10)
        cluster.stop()
    return {
        "mode": mode, "sockets": count, "held": held, "cpu": cpu,
        "clients": n, "failed": failed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        "max_ms": max(latencies) * 1000 if latencies else None,
        "closed_by_server": attack.closed_by_server,
        "inspection": status.get("inspection"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["xff", "proxy"], default="xff")
    parser.add_argument("--sockets", type=int, nargs="+", default=[0, 500, 1500])
    parser.add_argument("--peers", type=int, default=1500,
                        help="source addresses of the slow sockets in proxy mode")
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--measure", type=float, default=15.0)
    parser.add_argument("--interval", type=float, default=0.05,
                        help="pause between two fresh clients")
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="slowloris-"))
    print(f"{'mode':5} {'sockets':>7} {'held':>5} {'master CPU':>10} {'clients':>7} "
          f"{'failed':>6} {'p50 ms':>7} {'max ms':>7}  inspection")
    for count in args.sockets:
        r = phase(args.mode, min(count, 5000), max(1, args.peers), args.warmup, args.measure,
                  args.interval, log_dir)
        p50 = f"{r['p50_ms']:.1f}" if r["p50_ms"] is not None else "-"
        top = f"{r['max_ms']:.1f}" if r["max_ms"] is not None else "-"
        print(f"{r['mode']:5} {r['sockets']:>7} {r['held']:>5} {r['cpu'] * 100:>9.0f}% "
              f"{r['clients']:>7} {r['failed']:>6} {p50:>7} {top:>7}  {r['inspection']}",
              flush=True)
    shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
