"""Issue 13, items 5 and 6: the master's client-address inspection under slow peers, and the
client address taken from X-Forwarded-For behind a proxy that appends to it.

Real clusters, raw sockets from 127.0.0.N and python-socketio clients. The cost per waiting
socket (master CPU, latency of other clients) is measured by tests/bench/slowloris.py, not here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from clients import bound_session, make_client, wait_until, whoami

from sioctl.cluster.slots import slot_for_address


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
    from test_nginx_e2e import NginxServer

    from sioctl.cli import nginx

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
