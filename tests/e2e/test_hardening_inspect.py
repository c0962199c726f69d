"""Issue 13, items 5 and 6: the master's client-address inspection under slow peers, and the
client address taken from X-Forwarded-For behind a proxy that appends to it.

Real clusters, raw sockets from 127.0.0.N and python-socketio clients. The cost per waiting
socket (master CPU, latency of other clients) is measured by tests/bench/slowloris.py, not here.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sioctl.cluster.inspector import INSPECT_TIMEOUT, PEER_LIMIT
from sioctl.cluster.slots import slot_for_address
from tests.support.clients import bound_session, make_client, wait_until, whoami

HANDSHAKE = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """A list whose sockets are all closed at teardown."""
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def open_from(source: str, port: int, made: list[socket.socket], first: bytes) -> socket.socket:
    """A connection from ``source`` to the cluster that has sent ``first``."""
    sock = socket.socket()
    made.append(sock)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    if first:
        sock.sendall(first)
    return sock


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes ``sock`` within ``timeout`` seconds (without a reply)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def still_open(sock: socket.socket) -> bool:
    """True when nothing (no EOF, no reset) is waiting on ``sock`` right now."""
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def handshake_status(source: str, port: int, made: list[socket.socket], first: bytes) -> bytes:
    """The status line the cluster answers a complete polling handshake with."""
    sock = open_from(source, port, made, first)
    reply = b""
    while b"\r\n" not in reply:
        data = sock.recv(4096)
        if not data:
            break
        reply += data
    return reply.split(b"\r\n", 1)[0]


def proxy_v1(client: str, port: int) -> bytes:
    return f"PROXY TCP4 {client} 127.0.0.1 40000 {port}\r\n".encode()


def test_past_the_per_peer_cap_new_slow_sockets_are_closed_and_counted(
    start_cluster: Any, sockets: list[socket.socket]
) -> None:
    cluster = start_cluster(extra_args=["--proxy-protocol"])
    started = time.monotonic()
    held = [open_from("127.0.0.5", cluster.port, sockets, b"PROXY TCP4 ")
            for _ in range(PEER_LIMIT)]
    wait_until(lambda: cluster.status()["inspection"]["pending"] == PEER_LIMIT, 10,
               what=f"{PEER_LIMIT} connections under inspection")
    extra = [open_from("127.0.0.5", cluster.port, sockets, b"PROXY TCP4 ") for _ in range(5)]
    for sock in extra:
        assert closed_by_server(sock, INSPECT_TIMEOUT + 10)
    # Refused at once, not timed out.
    assert cluster.status()["inspection"].get("refused", 0) == 5
    # Another peer is served meanwhile.
    status = handshake_status("127.0.0.6", cluster.port, sockets,
                              proxy_v1("10.0.0.6", cluster.port) + HANDSHAKE + b"\r\n")
    assert status == b"HTTP/1.1 200 OK"
    if time.monotonic() - started < INSPECT_TIMEOUT - 0.5:  # else their deadline has come
        assert all(still_open(sock) for sock in held)
    assert "connections from 127.0.0.5 are waiting for their header (the limit)" in (
        cluster.log_text())


def test_many_slow_sockets_are_closed_at_their_deadline_while_a_client_is_served(
    start_cluster: Any, sockets: list[socket.socket]
) -> None:
    """Hundreds of heads trickling in from the trusted proxy: each closed once its 5 s are up
    and counted as a timeout (the proxy itself is not capped), while a real client through the
    same proxy address is served."""
    cluster = start_cluster(extra_args=["--forwarded-allow-ips", "127.0.0.1"])
    count = PEER_LIMIT + 44  # more than one peer may hold: a trusted proxy is not capped
    started = time.monotonic()
    slow = [open_from("127.0.0.1", cluster.port, sockets, HANDSHAKE) for _ in range(count)]
    wait_until(lambda: cluster.status()["inspection"]["pending"] == count, 10,
               what=f"{count} connections under inspection")
    for sock in slow[::10]:
        sock.sendall(b"X-Slow: 1")  # more bytes, still no end of head
    client = make_client("127.0.0.1", ["polling"], reconnection=False)
    try:
        client.connect(cluster.url, headers={"X-Forwarded-For": "10.0.0.42"})
        info = whoami(client)
    finally:
        client.shutdown()
    assert info["remote_addr"] == "10.0.0.42"
    if time.monotonic() - started < INSPECT_TIMEOUT - 0.5:  # else their deadline has come
        assert all(still_open(sock) for sock in slow), "closed before the deadline"
    for sock in slow:
        assert closed_by_server(sock, INSPECT_TIMEOUT + 10)
    inspection = cluster.status()["inspection"]
    assert inspection["timeouts"] == count
    assert inspection["pending"] == 0 and inspection.get("refused", 0) == 0


def test_a_head_that_trickles_in_is_served_normally(
    start_cluster: Any, sockets: list[socket.socket]
) -> None:
    """A head that arrives in pieces is dispatched once complete, and the worker reads it
    (and the next request on the connection) as if it had come at once."""
    cluster = start_cluster(extra_args=["--forwarded-allow-ips", "127.0.0.1"])
    sock = open_from("127.0.0.1", cluster.port, sockets, b"")
    request = HANDSHAKE + b"X-Forwarded-For: 10.0.0.77\r\n\r\n"
    for i in range(0, len(request), 16):
        sock.sendall(request[i : i + 16])
        time.sleep(0.05)
    reply = b""
    while b"\r\n\r\n" not in reply:
        data = sock.recv(4096)
        assert data, f"closed after {reply!r}"
        reply += data
    assert reply.startswith(b"HTTP/1.1 200 OK")


def test_x_forwarded_for_uses_the_rightmost_address_the_proxy_added(
    start_cluster: Any, tmp_path: Path
) -> None:
    """A proxy that appends (nginx ``$proxy_add_x_forwarded_for``) keeps what the client sent
    on the left: two different spoofed lefts land on the real client's worker, and the worker
    sees (environ, access log) the real address."""
    access_log = tmp_path / "access.log"
    cluster = start_cluster(extra_args=["--forwarded-allow-ips", "127.0.0.1",
                                        "--access-logfile", str(access_log)])
    # Not on the proxy's own slot, so a request routed by the proxy's address would show.
    real = next(f"10.0.0.{n}" for n in range(50, 99)
                if slot_for_address(f"10.0.0.{n}", 2) != slot_for_address("127.0.0.1", 2))
    spoofed = [f"10.9.0.{n}" for n in range(1, 50)]
    lefts = [next(s for s in spoofed if slot_for_address(s, 2) == slot) for slot in (0, 1)]
    for left in lefts:
        for transports in (["polling"], ["websocket"]):
            header = {"X-Forwarded-For": f"{left}, {real}"}
            # python-engineio sends connect()'s headers with the handshake only: a session's
            # headers go with every polling request, as through a proxy.
            session = bound_session("127.0.0.1")
            session.headers.update(header)
            client = make_client("127.0.0.1", transports, reconnection=False,
                                 http_session=session)
            try:
                client.connect(cluster.url, headers=header)
                info = whoami(client)
            finally:
                client.shutdown()
            assert info["remote_addr"] == real, (left, transports)
            assert info["slot"] == slot_for_address(real, 2), (left, transports)

    def logged() -> list[str]:
        with contextlib.suppress(OSError):
            return [line for line in access_log.read_text().splitlines() if line.strip()]
        return []

    lines = wait_until(logged, 10, what="access log lines")
    assert [line for line in lines if not line.startswith(real + " ")] == []


def test_nginx_appending_to_x_forwarded_for_gives_the_real_client(start_cluster: Any) -> None:
    """The seed's nginx config (``$proxy_add_x_forwarded_for``) in front of a node: a client's
    own X-Forwarded-For neither picks its worker nor shows as its address."""
    from sioctl.cli import nginx
    from tests.support.nginx import NginxServer

    node = start_cluster(extra_args=["--forwarded-allow-ips", "127.0.0.1"])

    def appending(listen: nginx.Address, local: nginx.LocalRun) -> str:
        config = nginx.http_config([nginx.Address("127.0.0.1", node.port)], listen=listen,
                                   local=local)
        setting = "X-Forwarded-For $remote_addr;"
        assert setting in config
        return config.replace(setting, "X-Forwarded-For $proxy_add_x_forwarded_for;")

    server = NginxServer(appending).start()
    try:
        for source in ("127.0.0.2", "127.0.0.3"):
            spoofed = next(f"10.9.0.{n}" for n in range(1, 50)
                           if slot_for_address(f"10.9.0.{n}", 2) != slot_for_address(source, 2))
            header = {"X-Forwarded-For": spoofed}
            session = bound_session(source)
            session.headers.update(header)
            client = make_client(source, ["polling", "websocket"], reconnection=False,
                                 http_session=session)
            try:
                client.connect(server.url, headers=header)
                info = whoami(client)
            finally:
                client.shutdown()
            assert info["remote_addr"] == source
            assert info["slot"] == slot_for_address(source, 2)
    finally:
        server.stop()


def test_a_half_closed_incomplete_head_is_closed_at_its_deadline(
    start_cluster: Any, sockets: list[socket.socket]
) -> None:
    """Part of a head, then the peer's write side shut: the socket stays readable for good, so
    the master stops watching it (it would spin) and closes it at its deadline as a timeout,
    while others are served."""
    cluster = start_cluster(extra_args=["--forwarded-allow-ips", "127.0.0.1"])
    sock = open_from("127.0.0.1", cluster.port, sockets, HANDSHAKE)
    wait_until(lambda: cluster.status()["inspection"]["pending"] == 1, 10, what="inspection")
    sock.shutdown(socket.SHUT_WR)
    status = handshake_status("127.0.0.1", cluster.port, sockets,
                              HANDSHAKE + b"X-Forwarded-For: 10.0.0.8\r\n\r\n")
    assert status == b"HTTP/1.1 200 OK"
    assert closed_by_server(sock, INSPECT_TIMEOUT + 10)
    inspection = cluster.status()["inspection"]
    assert (inspection["pending"], inspection["errors"], inspection["timeouts"]) == (0, 0, 1)
    assert inspection.get("refused", 0) == 0
