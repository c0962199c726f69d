"""A real nginx (started here, on loopback) in front of two sioctl nodes of two workers each,
joined by one Redis.

Clients come from 16 addresses, 127.0.0.2 … 127.0.0.17, and all reach nginx; nginx picks the
node with ``hash $remote_addr consistent`` and tells the node who the client is, either in
X-Forwarded-For (HTTP proxy; nodes run ``--forwarded-allow-ips 127.0.0.1``) or in a PROXY
protocol header (stream proxy; nodes run ``--proxy-protocol``). The node's master then picks
the worker from that address, so sessions spread over all four workers.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sioctl.cli import nginx
from tests.support.clients import (
    BoundClient,
    expected_slot,
    free_port,
    make_client,
    try_whoami,
    wait_for_upgrade,
    wait_until,
    whoami,
)

WORKERS = 2
SOURCE_IPS = [f"127.0.0.{i}" for i in range(2, 18)]
TRANSPORTS = [("polling",), ("websocket",), ("polling", "websocket")]
NODE_ARGS = {
    "http": ["--forwarded-allow-ips", "127.0.0.1"],
    "stream": ["--proxy-protocol"],
}
DELIVERY_TIMEOUT = 10.0
# A stopped node's clients find the other node within this long (they retry every second).
FAILOVER_TIMEOUT = 40.0


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


@pytest.fixture
def start_nginx() -> Iterator[Callable[..., NginxServer]]:
    """Factory: ``start_nginx(kind, nodes)`` runs nginx with the http or stream config that
    ``sioctl nginx`` writes for those nodes; stopped at teardown."""
    started: list[NginxServer] = []

    def start(kind: str, nodes: Sequence[Any]) -> NginxServer:
        addresses = [nginx.Address("127.0.0.1", node.port) for node in nodes]
        if kind == "stream":
            module = stream_module()
            server = NginxServer(lambda listen, local: nginx.stream_config(
                addresses, listen=listen, stream_module=module, local=local))
        else:
            server = NginxServer(lambda listen, local: nginx.http_config(
                addresses, listen=listen, local=local))
        started.append(server)
        return server.start()

    yield start

    for server in started:
        server.stop()


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


@pytest.fixture
def front(
    request: pytest.FixtureRequest,
    start_cluster: Callable[..., Any],
    start_nginx: Callable[..., NginxServer],
) -> Front:
    """nginx (kind from the test's ``kind`` parameter) in front of two 2-worker nodes sharing
    the session's Redis."""
    kind = request.param
    if kind == "stream":
        stream_module()  # skip before starting anything
    nodes = [
        start_cluster(workers=WORKERS, extra_args=[*NODE_ARGS[kind], "--graceful-timeout", "2"])
        for _ in range(2)
    ]
    return Front(nodes, start_nginx(kind, nodes))


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


KINDS = pytest.mark.parametrize("front", ["http", "stream"], indirect=True)


@KINDS
def test_sessions_through_nginx_spread_over_every_worker(
    front: Front, connect: Callable[..., BoundClient]
) -> None:
    clients = connect_all(connect, front.url)
    places = {}
    for client in clients:
        # Several requests per session: each long-poll is a new connection through nginx,
        # and every one of them must reach the worker that holds the session.
        seen = {front.where(client) for _ in range(4)}
        assert len(seen) == 1, f"{client.source_ip} was served by several workers: {seen}"
        places[client.source_ip] = seen.pop()
        if "websocket" in client.default_transports:
            assert client.transport() == "websocket"
    used = set(places.values())
    assert len(used) > 1, f"every client landed on one worker: {places}"
    assert used == {(n, s) for n in range(2) for s in range(WORKERS)}, places
    # The node's master chose the worker from the real client address.
    for ip, (_node, slot) in places.items():
        assert slot == expected_slot(ip, WORKERS), (ip, places)
    front.nodes[0].wait_for(lambda _s: front.slots_with_sessions() == used, timeout=10,
                            what=f"status showing sessions on {sorted(used)}")


@pytest.mark.parametrize("front", ["stream"], indirect=True)
def test_proxy_protocol_gives_workers_the_client_address(
    front: Front, connect: Callable[..., BoundClient]
) -> None:
    for client in connect_all(connect, front.url, SOURCE_IPS[:6]):
        assert whoami(client)["remote_addr"] == client.source_ip


@KINDS
def test_broadcasts_and_room_emits_cross_nodes(
    front: Front, connect: Callable[..., BoundClient]
) -> None:
    clients = connect_all(connect, front.url)
    by_node: dict[int, list[BoundClient]] = {0: [], 1: []}
    for client in clients:
        by_node[front.where(client)[0]].append(client)
    assert by_node[0] and by_node[1], "nginx sent every client to one node"
    sender, receiver = by_node[0][0], by_node[1][0]

    for client in clients:
        client.record("news")
    message = {"id": uuid.uuid4().hex}
    assert sender.call("broadcast", message, timeout=DELIVERY_TIMEOUT) is True
    for client in clients:
        assert client.next_event("news", DELIVERY_TIMEOUT) == message, client.source_ip

    room = f"room-{uuid.uuid4().hex}"
    receiver.call("join", room, timeout=DELIVERY_TIMEOUT)
    in_room = {"id": uuid.uuid4().hex}
    sender.call("to_room", {"room": room, "data": in_room}, timeout=DELIVERY_TIMEOUT)
    assert receiver.next_event("news", DELIVERY_TIMEOUT) == in_room
    # The sender is not in the room: the next message it gets is a later broadcast.
    after = {"id": uuid.uuid4().hex}
    sender.call("broadcast", after, timeout=DELIVERY_TIMEOUT)
    assert sender.next_event("news", DELIVERY_TIMEOUT) == after


@KINDS
def test_clients_of_a_stopped_node_move_to_the_other(
    front: Front, connect: Callable[..., BoundClient]
) -> None:
    clients = connect_all(connect, front.url)
    on_stopped = [c for c in clients if front.where(c)[0] == 0]
    on_other = [c for c in clients if front.where(c)[0] == 1]
    assert on_stopped and on_other, "nginx sent every client to one node"

    front.nodes[0].signal(signal.SIGTERM)
    assert front.nodes[0].wait_exit(30) is not None, "the stopped node did not exit"

    def moved(client: BoundClient) -> Callable[[], bool]:
        def check() -> bool:
            answer = try_whoami(client)
            return answer is not None and answer["pid"] in front.workers and (
                front.workers[answer["pid"]][0] == 1)
        return check

    for client in on_stopped:
        wait_until(moved(client), FAILOVER_TIMEOUT,
                   what=f"{client.source_ip} to reconnect to the other node")
        assert client.call("echo", "still here", timeout=DELIVERY_TIMEOUT) == "still here"
    # Messages reach both the moved clients and those that were there all along.
    everyone = on_stopped + on_other
    for client in everyone:
        client.record("news")
    message = {"id": uuid.uuid4().hex}
    on_stopped[0].call("broadcast", message, timeout=DELIVERY_TIMEOUT)
    for client in everyone:
        assert client.next_event("news", DELIVERY_TIMEOUT) == message, client.source_ip


def test_spoofed_forwarded_for_from_an_untrusted_address_is_ignored(
    start_cluster: Callable[..., Any],
) -> None:
    node = start_cluster(workers=WORKERS, extra_args=NODE_ARGS["http"])
    untrusted = "127.0.0.9"
    # An address served by the other slot: if the header counted, the slot would change.
    spoofed = next(ip for ip in SOURCE_IPS
                   if expected_slot(ip, WORKERS) != expected_slot(untrusted, WORKERS))
    headers = {"X-Forwarded-For": spoofed, "X-Real-IP": spoofed, "Forwarded": f"for={spoofed}"}
    made: list[BoundClient] = []

    def connect_with(ip: str, transports: tuple[str, ...], sent: dict[str, str]) -> BoundClient:
        client = make_client(ip, transports)
        made.append(client)
        client.connect(node.url, headers=sent)
        if "websocket" in transports:
            wait_for_upgrade(client)
        return client

    try:
        for transports in TRANSPORTS:
            client = connect_with(untrusted, transports, headers)
            assert whoami(client)["slot"] == expected_slot(untrusted, WORKERS), transports
        # From the trusted address the same header does decide the slot.
        trusted = connect_with("127.0.0.1", ("polling", "websocket"),
                               {"X-Forwarded-For": spoofed})
        assert whoami(trusted)["slot"] == expected_slot(spoofed, WORKERS)
    finally:
        for client in made:
            with contextlib.suppress(Exception):
                client.shutdown()
