"""The cost of one websocket frame write on the eventlet worker: ``ws_reads.BufferedReads.
sendall`` of this checkout against the one at a baseline commit (``--baseline``, main by
default), for a frame the socket takes whole (the common case: every frame python-engineio's
writer writes, each pong and close frame).

A green socketpair (plain, or with TLS between its ends: ``--tls``), a reader green thread
draining the other end; WRITES writes of 100 bytes; five rounds alternating the two. Run
through the benchmark lock:

    flock /tmp/sioctl-bench.lock .venv/bin/python tests/bench/ws_send_cost.py [--tls]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from types import ModuleType

warnings.simplefilter("ignore")  # eventlet's deprecation notice

from eventlet.green import socket as green_socket  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
for _path in (str(REPO_ROOT), str(Path(__file__).resolve().parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from green_writes import microseconds_per_write  # noqa: E402

from sioctl.worker import ws_reads  # noqa: E402
from tests.support.certificates import green_tls_pair, self_signed  # noqa: E402

WRITES = 100_000
ROUNDS = 5
PAYLOAD = b"x" * 100


def baseline_module(rev: str) -> ModuleType:
    """worker/ws_reads.py at ``rev``, loaded beside this checkout's (in its package, so that
    its relative imports resolve)."""
    source = subprocess.run(["git", "show", f"{rev}:worker/ws_reads.py"], cwd=REPO_ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="sio")) / "ws_reads_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("sioctl.worker.ws_reads_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def one_round(module: ModuleType, cert: tuple[str, str] | None) -> float:
    """Microseconds per ``sendall`` of PAYLOAD through ``module``'s BufferedReads."""
    ours, peer = green_socket.socketpair()
    if cert is not None:
        ours, peer = green_tls_pair(ours, peer, *cert)
    writes = module.BufferedReads(ours)
    writes.settimeout(45.0)
    return microseconds_per_write(ours, peer, lambda: writes.sendall(PAYLOAD), WRITES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()
    cert = self_signed(Path(tempfile.mkdtemp(prefix="sio"))) if args.tls else None
    modules = {args.baseline: baseline_module(args.baseline), "this checkout": ws_reads}
    results: dict[str, list[float]] = {name: [] for name in modules}
    for _ in range(ROUNDS):
        for name, module in modules.items():
            results[name].append(one_round(module, cert))
    for name, figures in results.items():
        ordered = sorted(figures)
        print(f"{name}{' (TLS)' if cert else ''}: median {ordered[len(ordered) // 2]:.3f} "
              f"µs/sendall (min {ordered[0]:.3f}, max {ordered[-1]:.3f}; rounds "
              f"{', '.join(f'{f:.3f}' for f in figures)})")


if __name__ == "__main__":
    main()
