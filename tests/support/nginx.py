"""nginx in front of sioctl nodes for the end-to-end tests (tests/e2e/test_nginx_*.py,
test_hardening_inspect.py): ``NginxServer`` runs the config ``sioctl nginx`` writes, ``Front``
and ``connect_all`` connect clients through it. The ``start_nginx`` fixture is in
tests/e2e/conftest.py."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from sioctl.cli import nginx
from tests.support.clients import (
    BoundClient,
    expected_slot,
    free_port,
    wait_for_upgrade,
    whoami,
)

# 16 client addresses, 8 served by each slot of a 2-worker node (the node's own choice), so
# that every (node, slot) pair gets clients whichever way nginx's ring splits them between the
# nodes (their ports change from run to run). The first 16 addresses would do only by luck:
# under the jump hash 5 of 127.0.0.2-17 go to slot 1.
SOURCE_IPS = sorted(
    [ip for ip in (f"127.0.0.{i}" for i in range(2, 80)) if expected_slot(ip, 2) == 0][:8]
    + [ip for ip in (f"127.0.0.{i}" for i in range(2, 80)) if expected_slot(ip, 2) == 1][:8],
    key=lambda ip: int(ip.rsplit(".", 1)[1]),
)
TRANSPORTS = [("polling",), ("websocket",), ("polling", "websocket")]
NODE_ARGS = {
    "http": ["--forwarded-allow-ips", "127.0.0.1"],
    "stream": ["--proxy-protocol"],
}


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    if found is None:
        pytest.skip("nginx is not installed (scripts/setup.sh installs it)")
    return found


def stream_module() -> str | None:
    """The stream module to load (None: built in); skips when nginx has none here."""
    if os.path.exists(nginx.DEBIAN_STREAM_MODULE):
        return nginx.DEBIAN_STREAM_MODULE
    out = subprocess.run([nginx_binary(), "-V"], capture_output=True, text=True).stderr
    if re.search(r"--with-stream(\s|$)", out):
        return None
    pytest.skip("nginx has no stream module (Debian: apt-get install libnginx-mod-stream)")


class NginxServer:
    """nginx in the foreground (``daemon off``) with its config, pid, logs and temporary files
    in a directory of its own, listening on 127.0.0.1 only."""

    def __init__(self, config_for: Callable[[nginx.Address, nginx.LocalRun], str]) -> None:
        # Short and world-searchable: nginx's workers run as nobody when the tests run as root.
        self.directory = Path(tempfile.mkdtemp(prefix="ngx"))
        self.directory.chmod(0o755)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config_for(
            nginx.Address("127.0.0.1", self.port), nginx.LocalRun(str(self.directory)))
        self.conf_path = self.directory / "nginx.conf"
        self.conf_path.write_text(self.config)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> NginxServer:
        with open(self.directory / "nginx.out", "wb") as out:
            self.proc = subprocess.Popen(
                [nginx_binary(), "-p", str(self.directory), "-e",
                 str(self.directory / "error.log"), "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"nginx exited with {self.proc.returncode}:\n{self.logs()}")
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=1.0
            ):
                return self
            if time.monotonic() >= deadline:
                pytest.fail(f"nginx not listening within {timeout:g}s:\n{self.logs()}")
            time.sleep(0.05)

    def logs(self) -> str:
        parts = []
        for name in ("nginx.out", "error.log"):
            with contextlib.suppress(OSError):
                parts.append(f"--- {name} ---\n{(self.directory / name).read_text()}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # nginx's fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


class Front:
    """Two nodes behind nginx, and which worker serves whom."""

    def __init__(self, nodes: list[Any], server: NginxServer) -> None:
        self.nodes = nodes
        self.nginx = server
        self.url = server.url
        # worker pid -> (node index, slot)
        self.workers = {
            pid: (index, slot)
            for index, node in enumerate(nodes)
            for slot, pid in node.worker_pids().items()
        }

    def where(self, client: BoundClient) -> tuple[int, int]:
        """(node index, slot) of the worker serving ``client``, checked against the slot."""
        answer = whoami(client)
        place = self.workers.get(answer["pid"])
        assert place is not None, f"{client.source_ip} is served by unknown pid {answer}"
        assert place[1] == answer["slot"], answer
        return place

    def slots_with_sessions(self) -> set[tuple[int, int]]:
        """(node index, slot) of every worker whose heartbeat reports sessions."""
        return {
            (index, int(slot["slot"]))
            for index, node in enumerate(self.nodes)
            for slot in node.status()["slots"]
            if slot.get("sessions")
        }


def connect_all(
    connect: Callable[..., BoundClient], url: str, ips: Sequence[str] = SOURCE_IPS
) -> list[BoundClient]:
    """One client per address; polling, websocket and upgrading ones in turn."""
    clients = []
    for i, ip in enumerate(ips):
        transports = TRANSPORTS[i % len(TRANSPORTS)]
        client = connect(url, ip, transports)
        if "websocket" in transports:
            wait_for_upgrade(client)
        clients.append(client)
    return clients
