"""``-b unix:PATH``: a cluster listening on a Unix socket for a proxy on the same machine, on
both engines. The client address comes from the proxy's X-Forwarded-For (a Unix peer is a
trusted proxy, as gunicorn has it); a connection that names none goes to slot 0."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sioctl.cli import nginx
from sioctl.cluster.slots import slot_for_address
from tests.support.clients import ips_for_slot, wait_until, whoami
from tests.support.cluster import ENGINES, assert_clean_failure
from tests.support.nginx import NginxServer

WORKERS = 2


class UnixConnection(http.client.HTTPConnection):
    """http.client over a Unix socket: a real HTTP client, as nginx is one."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def request(path: str, method: str, target: str, body: str = "",
            client: str | None = None) -> str:
    """One request on a new connection to the Unix socket ``path``, the client named in
    X-Forwarded-For (none: no header); the response body, after checking it is a 200."""
    conn = UnixConnection(path)
    headers = {"Content-Type": "text/plain;charset=UTF-8"}
    if client:
        headers["X-Forwarded-For"] = client
    try:
        conn.request(method, target, body=body.encode() or None, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200, (response.status, text)
        return text
    finally:
        conn.close()


def polling_whoami(path: str, client: str | None) -> dict[str, Any]:
    """Open a Socket.IO session over long-polling on ``path`` as ``client`` and ask whoami."""
    base = "/socket.io/?EIO=4&transport=polling"
    opened = json.loads(request(path, "GET", base, client=client)[1:])
    target = f"{base}&sid={opened['sid']}"
    assert request(path, "POST", target, "40", client=client) == "ok"
    request(path, "GET", target, client=client)  # the CONNECT's answer
    assert request(path, "POST", target, '421["whoami"]', client=client) == "ok"
    answer = request(path, "GET", target, client=client)
    assert answer.startswith("431"), answer
    reply: dict[str, Any] = json.loads(answer[3:])[0]
    return reply


@pytest.fixture
def socket_dir() -> Iterator[str]:
    """A short directory nginx's workers (nobody, when the tests run as root) can enter."""
    path = tempfile.mkdtemp(prefix="sio")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_clients_named_by_the_proxy_keep_their_slot(
    start_cluster: Callable[..., Any], socket_dir: str
) -> None:
    path = os.path.join(socket_dir, "app.sock")
    cluster = start_cluster(workers=WORKERS, extra_args=["-b", f"unix:{path}"])
    assert f"unix:{path}" in cluster.status()["binds"]
    assert os.stat(path).st_mode & 0o777 == 0o666
    workers = cluster.worker_pids()
    for client in ("127.0.0.9", "10.1.2.3", "2001:db8::7"):
        answer = polling_whoami(path, client)
        slot = slot_for_address(client, WORKERS)
        assert (answer["slot"], answer["pid"]) == (slot, workers[slot]), client
        assert answer["remote_addr"] == client

    # No forwarded header: no client address, slot 0, and the log says why once.
    answer = polling_whoami(path, None)
    assert answer["slot"] == 0 and not answer["remote_addr"]
    assert cluster.log_text().count("named no client") == 1

    cluster.stop()
    assert not os.path.exists(path), "the socket file outlived its master"


@pytest.mark.parametrize("engine", ENGINES)
def test_nginx_in_front_of_a_unix_socket(
    start_cluster: Callable[..., Any], connect: Callable[..., Any], socket_dir: str
) -> None:
    path = os.path.join(socket_dir, "app.sock")
    cluster = start_cluster(workers=WORKERS, extra_args=["-b", f"unix:{path}"])
    # The config `sioctl nginx --node unix:PATH` writes.
    server = NginxServer(lambda listen, local: nginx.http_config(
        [nginx.parse_address(f"unix:{path}")], listen=listen, local=local))
    try:
        server.start()
        workers = cluster.worker_pids()
        for slot in range(WORKERS):
            for ip in ips_for_slot(slot, WORKERS)[:2]:
                client = connect(server.url, ip)
                answer = whoami(client)
                assert (answer["slot"], answer["pid"], answer["remote_addr"]) == (
                    slot, workers[slot], ip)
                wait_until(lambda c=client: c.transport() == "websocket", 10,
                           what="the websocket upgrade through nginx")
                assert whoami(client)["pid"] == workers[slot]
    finally:
        server.stop()


def test_a_stale_socket_file_is_replaced_and_other_files_are_not(
    start_cluster: Callable[..., Any], run_sioctl: Callable[..., Any], socket_dir: str
) -> None:
    path = os.path.join(socket_dir, "app.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(path)  # closed without unlinking: what a killed master leaves
    cluster = start_cluster(workers=1, extra_args=["-b", f"unix:{path}"])
    assert polling_whoami(path, "127.0.0.5")["remote_addr"] == "127.0.0.5"

    # A live server on the path, or a file that is no socket, is an error of one line.
    for taken in (path, os.path.join(socket_dir, "plain")):
        if taken != path:
            open(taken, "w").close()
        result = run_sioctl("start", "tests.apps.chat:sio", "-w", "1", "-b", f"unix:{taken}",
                            "--run-dir", socket_dir, "--title", "second")
        assert_clean_failure(result, f"cannot bind unix:{taken}")
    cluster.stop()
    assert not os.path.exists(path)
