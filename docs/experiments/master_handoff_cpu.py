"""Master CPU per connection through a real cluster's accept → hand-off path (issue 14, the master).

``handoff_takeback_cost.py`` times the bare ``send_fds`` of one hand-off; this one measures the
whole path in a running master: accept, slot choice, queue, ``send_fds``, plus the loop turn
around them. It starts ``sioctl start`` with two workers (embedded Redis), opens and closes
``count`` TCP connections from 127.0.0.2-9 (so both slots get some), and reads the master's
on-CPU time from ``/proc/<pid>/schedstat`` (nanoseconds) before and after. The master's idle
rate, measured for one second before, is subtracted.

With ``--syscalls``, one more round runs under ``strace -c`` attached to the master and prints
the master's system calls per connection, by call (a figure that, unlike CPU time, does not
move with the machine's load).

    python docs/experiments/master_handoff_cpu.py [count] [rounds] [--syscalls]
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def on_cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def control(path: str, command: dict[str, object]) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(json.dumps(command).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return dict(json.loads(data))


def connect_many(port: int, count: int) -> None:
    for n in range(count):
        with socket.socket() as c:
            c.bind((f"127.0.0.{2 + n % 8}", 0))
            c.connect(("127.0.0.1", port))


def handoffs(sock_path: str) -> int:
    status = control(sock_path, {"cmd": "status"})
    return sum(int(slot["handoffs"]) for slot in status["slots"])  # type: ignore[attr-defined]


def count_syscalls(pid: int, port: int, count: int, sock_path: str) -> None:
    """Print the master's system calls per connection while ``count`` connections go through."""
    out = tempfile.mktemp(prefix="sioh-strace")
    tracer = subprocess.Popen(["strace", "-c", "-o", out, "-p", str(pid)],
                              stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    before = handoffs(sock_path)
    connect_many(port, count)
    # The traced master is slow: wait until it has handed every connection over.
    deadline = time.monotonic() + 60
    while handoffs(sock_path) < before + count and time.monotonic() < deadline:
        time.sleep(0.2)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(30)
    with open(out) as f:
        lines = f.read().splitlines()
    os.unlink(out)
    calls = {}
    for line in lines:
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3])
    total = sum(calls.values())
    print(f"syscalls: {total / count:.2f} per connection (" + ", ".join(
        f"{name} {n / count:.2f}" for name, n in sorted(calls.items(), key=lambda kv: -kv[1])
        if n / count >= 0.01) + ")")


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--syscalls"]
    count = int(args[0]) if args else 3000
    rounds = int(args[1]) if len(args) > 1 else 3
    port = free_port()
    run_dir = tempfile.mkdtemp(prefix="sioh")
    title = f"h{port}"
    sock_path = os.path.join(run_dir, title, "control.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sioctl", "start", "tests.apps.chat:sio", "-w", "2",
         "-b", f"127.0.0.1:{port}", "--run-dir", run_dir, "--title", title],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if control(sock_path, {"cmd": "status"}).get("state") == "running":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the cluster did not start")
            time.sleep(0.1)
        for round_ in range(rounds):
            idle_start = on_cpu_ns(proc.pid)
            time.sleep(1.0)
            idle_rate = (on_cpu_ns(proc.pid) - idle_start) / 1.0
            start_cpu = on_cpu_ns(proc.pid)
            start = time.monotonic()
            connect_many(port, count)
            # Let the master finish the last hand-offs.
            time.sleep(0.2)
            elapsed = time.monotonic() - start
            spent = on_cpu_ns(proc.pid) - start_cpu - idle_rate * elapsed
            print(f"round {round_ + 1}: {spent / count / 1000:.1f} us master CPU per connection "
                  f"({count} connections in {elapsed:.2f}s, idle {idle_rate / 1e6:.2f} ms/s)")
        if "--syscalls" in sys.argv:
            count_syscalls(proc.pid, port, count, sock_path)
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
