"""The master learns the real client address: PROXY protocol headers and trusted forwarded
headers, with garbage and silent peers closed on their own."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sioctl.cluster.slots import slot_for_address
from tests.support.clients import bound_session, make_client, wait_until, whoami
from tests.support.cluster import ENGINES


class ProxyRelay:
    """A TCP proxy in front of a node that speaks the PROXY protocol: a client from
    127.0.0.N is announced as 10.0.0.N (v1 for even N, v2 for odd N)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = False
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, (host, port) = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            upstream.sendall(self.header(host, port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def header(self, host: str, port: int) -> bytes:
        n = int(host.rsplit(".", 1)[1])
        fake = f"10.0.0.{n}"
        if n % 2 == 0:
            return f"PROXY TCP4 {fake} 127.0.0.1 {port} {self.target_port}\r\n".encode()
        body = (socket.inet_aton(fake) + socket.inet_aton("127.0.0.1")
                + port.to_bytes(2, "big") + self.target_port.to_bytes(2, "big"))
        return (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + len(body).to_bytes(2, "big") + body)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.stopped = True
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def relay_for() -> Iterator[Any]:
    made: list[ProxyRelay] = []

    def make(port: int) -> ProxyRelay:
        made.append(ProxyRelay(port))
        return made[-1]

    yield make
    for relay in made:
        relay.close()


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("engine", ENGINES)
def test_proxy_protocol_v1_and_v2_give_the_real_client(
    start_cluster: Any, relay_for: Any
) -> None:
    cluster = start_cluster(extra_args=["--proxy-protocol"])
    relay = relay_for(cluster.port)
    for n in (2, 3, 4, 5):  # v1 and v2 alike
        client = make_client(f"127.0.0.{n}", reconnection=False)
        try:
            client.connect(f"http://127.0.0.1:{relay.port}")
            info = whoami(client)
        finally:
            client.shutdown()
        assert info["remote_addr"] == f"10.0.0.{n}"
        assert info["slot"] == slot_for_address(f"10.0.0.{n}", 2)


def test_peers_without_a_valid_header_are_closed_alone(start_cluster: Any,
                                                       relay_for: Any) -> None:
    cluster = start_cluster(extra_args=["--proxy-protocol"])
    with socket.create_connection(("127.0.0.1", cluster.port)) as garbage:
        garbage.sendall(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed_by_server(garbage, 10)
    with socket.create_connection(("127.0.0.1", cluster.port)) as silent:
        # Nothing sent: closed after the inspection timeout, while others are served.
        relay = relay_for(cluster.port)
        client = make_client("127.0.0.2", reconnection=False)
        try:
            client.connect(f"http://127.0.0.1:{relay.port}")
            assert whoami(client)["remote_addr"] == "10.0.0.2"
        finally:
            client.shutdown()
        assert closed_by_server(silent, 15)
    inspection = cluster.status()["inspection"]
    assert inspection["errors"] >= 1 and inspection["timeouts"] >= 1
    assert "no PROXY protocol header" in cluster.log_text()


@pytest.mark.parametrize("engine", ENGINES)
def test_forwarded_headers_count_only_from_trusted_peers(start_cluster: Any) -> None:
    cluster = start_cluster(extra_args=["--forwarded-allow-ips", "127.0.0.3"])
    for source, expected in (("127.0.0.3", "10.0.0.99"), ("127.0.0.4", "127.0.0.4")):
        for transports in (["polling"], ["websocket"]):
            # On every request, as a proxy stamps them: python-engineio's client sends connect's
            # headers with the handshake only, and a later poll without one is routed by its
            # source address (the same slot only by chance).
            session = bound_session(source)
            session.headers["X-Forwarded-For"] = "10.0.0.99"
            client = make_client(source, transports, reconnection=False, http_session=session)
            try:
                client.connect(cluster.url, headers={"X-Forwarded-For": "10.0.0.99"})
                info = whoami(client)
            finally:
                client.shutdown()
            assert info["remote_addr"] == expected, (source, transports)
            assert info["slot"] == slot_for_address(expected, 2)
    wait_until(lambda: cluster.status()["inspection"]["pending"] == 0, 5, what="no inspection")
