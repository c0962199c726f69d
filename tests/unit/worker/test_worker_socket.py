"""A connection fd adopted by a worker keeps its real address family and gets TCP_NODELAY.

After eventlet's monkey-patching, ``socket.socket(fileno=fd)`` can report AF_INET for an IPv6
fd, and eventlet.wsgi never sets TCP_NODELAY. The check runs in a child interpreter that is
monkey-patched the way a worker is: a real TCP connection on the loopback, its accepted fd handed
to ``sioctl.worker.fd_listener.adopt_connection`` as if it had come from the master.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

ADOPT_SCRIPT = r'''
import warnings
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet
eventlet.monkey_patch()

import json
import os
import socket
import sys

from eventlet.patcher import original

from sioctl.worker.fd_listener import adopt_connection

raw = original("socket")
host = sys.argv[1]
family = socket.AF_INET6 if ":" in host else socket.AF_INET
listener = socket.socket(family, socket.SOCK_STREAM)
try:
    listener.bind((host, 0))
except OSError as exc:
    print(json.dumps({"skip": f"cannot bind {host}: {exc}"}))
    sys.exit(0)
listener.listen(1)
client = socket.create_connection((host, listener.getsockname()[1]), timeout=5)
accepted, _ = listener.accept()
nodelay_before = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
# What the master sends: a bare fd, the accepting socket gone.
fd = os.dup(accepted.fileno())
accepted.close()
listener.close()

sock = adopt_connection(fd)
# The kernel's own answer, from the unpatched module on a duplicate of the fd.
with raw.socket(fileno=os.dup(fd)) as probe:
    kernel_family = probe.family
client.sendall(b"ping")
received = sock.recv(4)
sock.sendall(b"pong")
replied = client.recv(4)
print(json.dumps({
    "family": int(sock.family),
    "kernel_family": int(kernel_family),
    "nodelay_before": nodelay_before,
    "nodelay": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
    "peer": list(sock.getpeername())[:2],
    "client": list(client.getsockname())[:2],
    "received": received.decode(),
    "replied": replied.decode(),
}))
sock.close()
client.close()
'''


@pytest.mark.parametrize(
    ("host", "family"),
    [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)],
    ids=["ipv4", "ipv6"],
)
def test_adopted_connection_keeps_family_and_sets_nodelay(
    tmp_path: Path, host: str, family: socket.AddressFamily
) -> None:
    script = tmp_path / "adopt.py"
    script.write_text(ADOPT_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), host],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if "skip" in report:
        pytest.skip(report["skip"])
    assert report["kernel_family"] == family, report
    assert report["family"] == family, f"adopted socket reports the wrong family: {report}"
    # The accepted socket had Nagle on; adoption turned it off.
    assert report["nodelay_before"] == 0, report
    assert report["nodelay"] != 0, f"TCP_NODELAY not set: {report}"
    assert report["peer"] == report["client"], report
    assert (report["received"], report["replied"]) == ("ping", "pong"), report
