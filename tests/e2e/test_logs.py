"""What the logs say, on both engines: the access log's protocol version, and an app that fails
at import shown with the frames that raised."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import wait_until
from tests.support.cluster import ENGINES

StartCluster = Callable[..., Any]


def raw_request(port: int, version: str) -> bytes:
    """One Engine.IO handshake sent as HTTP/``version`` from 127.0.0.1; the response's bytes."""
    head = (f"GET /socket.io/?EIO=4&transport=polling&v={version} HTTP/{version}\r\n"
            f"Host: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("engine", ENGINES)
def test_access_log_shows_the_request_http_version(
    start_cluster: StartCluster, tmp_path: Path
) -> None:
    access_log = tmp_path / "access.log"
    cluster = start_cluster(workers=1, extra_args=["--access-logfile", str(access_log)])
    for version in ("1.1", "1.0"):
        assert raw_request(cluster.port, version).startswith(b"HTTP/1.1 200"), version

    def logged() -> dict[str, str]:
        text = access_log.read_text() if access_log.exists() else ""
        found = re.findall(r'"GET /socket\.io/\?EIO=4&transport=polling&v=(1\.[01]) (\S+)"',
                           text)
        return dict(found)

    versions = wait_until(lambda: len(logged()) == 2 and logged(), 10.0,
                          what="both requests in the access log")
    assert versions == {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
