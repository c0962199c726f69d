"""What the logs say, on both engines: the access log's protocol version, and an app that fails
at import shown with the frames that raised; on eventlet, a websocket's access line."""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import free_port, wait_until, whoami
from tests.support.cluster import ENGINES, assert_clean_failure, start_args

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


@pytest.mark.parametrize("engine", ENGINES)
def test_a_websocket_is_logged_once_when_it_ends(
    start_cluster: StartCluster, connect: Callable[..., Any], tmp_path: Path, engine: str
) -> None:
    """A websocket's request gets its one access line (101) when the websocket ends, not when
    its reading is handed over once it is established (eventlet: worker/http_server.py;
    asyncio: worker/protocol/async_ws_reader.py)."""
    access_log = tmp_path / "access.log"
    cluster = start_cluster(workers=1, extra_args=["--access-logfile", str(access_log)])
    ip = "127.0.0.57"

    def websocket_lines() -> list[str]:
        text = access_log.read_text() if access_log.exists() else ""
        return [line for line in text.splitlines()
                if line.startswith(ip) and "transport=websocket" in line]

    client = connect(cluster, ip, ("websocket",))
    # The server answered over the websocket: its request has long returned.
    assert whoami(client)["remote_addr"] == ip
    assert websocket_lines() == []
    client.disconnect()
    lines = wait_until(websocket_lines, 10.0, what="the websocket's access line")
    assert len(lines) == 1 and '" 101 ' in lines[0], lines


@pytest.mark.parametrize("worker_class", ["eventlet", "asyncio", "auto"])
def test_an_app_failing_at_import_shows_where(
    run_sioctl: Callable[..., Any], worker_class: str
) -> None:
    run_dir = tempfile.mkdtemp(prefix="sio")
    try:
        result = run_sioctl(*start_args("tests.apps.broken_env:sio", free_port(), run_dir,
                                        "-w", "1", "-k", worker_class))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    # One line says what failed, at the default level and without a Python traceback...
    assert_clean_failure(result, "tests.apps.broken_env", "KeyError", "SIOCTL_TEST_DATABASE_URL")
    # ...and the lines under it say where: the app's frames, innermost last, none of sioctl's.
    lines = result.stderr.splitlines()
    frames = [line.split("ERROR   at ", 1)[1] for line in lines if "ERROR   at " in line]
    # (Python 3.10's os.py is no frozen module: its __getitem__ may come third.)
    assert frames[:2] == [
        "tests/apps/broken_env.py:11 in <module>: DATABASE = database_url()",
        'tests/apps/broken_env.py:8 in database_url: '
        'return os.environ["SIOCTL_TEST_DATABASE_URL"]',
    ], result.stderr
    assert not [f for f in frames if f.startswith(("worker/", "cluster/", "cli/", "sioctl/"))]
