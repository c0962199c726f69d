"""TLS terminated by the workers (--certfile/--keyfile); the master still routes by client IP."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import expected_slot, ips_for_slot
from tests.support.cluster import ENGINES
from tests.support.tls_client import tls_client


@pytest.mark.parametrize("engine", ENGINES)
def test_https_and_wss_through_the_master(
    start_cluster: Any, certificate: tuple[str, str]
) -> None:
    certfile, keyfile = certificate
    cluster = start_cluster(extra_args=["--certfile", certfile, "--keyfile", keyfile])
    url = f"https://127.0.0.1:{cluster.port}"
    assert cluster.status()["binds"] == [url]

    # Polling from addresses of both slots: the master hashed the real client address.
    for slot in (0, 1):
        ip = ips_for_slot(slot, 2)[0]
        client = tls_client(certfile, ip)
        client.connect(url, transports=["polling"], wait_timeout=10)
        try:
            info = client.call("whoami", timeout=10)
        finally:
            client.disconnect()
        assert info["remote_addr"] == ip
        assert info["slot"] == expected_slot(ip, 2) == slot

    for transports in (["websocket"], ["polling", "websocket"]):
        client = tls_client(certfile)
        client.connect(url, transports=transports, wait_timeout=10)
        try:
            assert client.call("echo", {"over": "tls"}, timeout=10) == {"over": "tls"}
            assert client.transport() == "websocket"
        finally:
            client.disconnect()


@pytest.mark.parametrize("engine", ENGINES)
def test_plain_http_to_a_tls_port_fails_alone(
    start_cluster: Any, certificate: tuple[str, str]
) -> None:
    certfile, keyfile = certificate
    cluster = start_cluster(extra_args=["--certfile", certfile, "--keyfile", keyfile])
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=10) as plain:
        plain.sendall(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = plain.recv(4096)
        except ConnectionResetError:
            answer = b""
    # No HTTP answer: the worker expected a TLS handshake and dropped the connection.
    assert not answer.startswith(b"HTTP/")
    # The worker that got the bad handshake still serves everyone.
    client = tls_client(certfile)
    client.connect(f"https://127.0.0.1:{cluster.port}", transports=["polling"], wait_timeout=10)
    try:
        assert client.call("echo", 1, timeout=10) == 1
    finally:
        client.disconnect()


def test_unreadable_certificate_is_a_one_line_boot_error(
    run_sioctl: Any, tmp_path: Path, redis_url: str
) -> None:
    missing = tmp_path / "missing.pem"
    result = run_sioctl(
        "start", "tests.apps.chat:sio", "-w", "2", "-b", "127.0.0.1:0",
        "--run-dir", str(tmp_path / "run"), "--title", "tlsbad", "--redis", redis_url,
        "--certfile", str(missing), "--keyfile", str(missing),
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line or "error" in line]
    assert any("certfile" in line and str(missing) in line for line in errors), result.stderr
