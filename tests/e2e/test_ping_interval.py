"""Workers advertise the configured ping interval, fractions of a second included.

python-engineio advertises ``int(ping_interval + grace) * 1000`` ms: 0.3 s becomes 0 ms. The apps
are in tests/apps/fastping.py: ``sio`` (0.3 s interval, 1 s timeout) and ``tight`` (0.5 s
interval, 0.4 s timeout, where the truncated value makes the JS client drop with "ping timeout").
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.clients import bound_session, expected_slot, ips_for_slot
from tests.support.cluster import ENGINES, app_on
from tests.support.paths import JS_DIR

WORKERS = 2
# app attribute -> (advertised pingInterval, pingTimeout) in ms
APPS = {"sio": (300, 1000), "tight": (500, 400)}
TRANSPORTS = [["polling", "websocket"], ["websocket"], ["polling"]]
# Long enough for several ping intervals of either app.
STAY_MS = 2000
NODE_TIMEOUT = 30.0


def open_packet(url: str, source_ip: str) -> dict[str, Any]:
    """The engine.io OPEN packet a new long-polling session gets from ``url``."""
    with bound_session(source_ip) as session:
        reply = session.get(f"{url}/socket.io/?EIO=4&transport=polling", timeout=10)
    reply.raise_for_status()
    body = reply.text
    assert body.startswith("0{"), f"not an OPEN packet: {body!r}"
    packet = json.loads(body[1:])
    assert isinstance(packet, dict)
    return packet


def run_node_clients(specs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Run tests/js/client.js once per spec, all at once; returns each one's output lines."""
    procs = [
        subprocess.Popen(
            ["node", str(JS_DIR / "client.js"), json.dumps(spec)],
            cwd=JS_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for spec in specs
    ]
    outputs = []
    try:
        for proc in procs:
            try:
                stdout, stderr = proc.communicate(timeout=NODE_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
            assert proc.returncode == 0, (
                f"node client failed ({proc.returncode}): {lines}\n{stderr}"
            )
            outputs.append(lines)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    return outputs


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("app", list(APPS))
def test_open_packet_advertises_the_configured_interval(
    start_cluster: Callable[..., Any], app: str, engine: str
) -> None:
    cluster = start_cluster(app=app_on(engine, f"tests.apps.fastping:{app}"), workers=WORKERS)
    interval, timeout = APPS[app]
    for slot in range(WORKERS):
        packet = open_packet(cluster.url, ips_for_slot(slot, WORKERS)[0])
        assert (packet["pingInterval"], packet["pingTimeout"]) == (interval, timeout), (
            f"slot {slot}: {packet}"
        )


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("app", list(APPS))
def test_js_client_stays_connected_across_pings(
    start_cluster: Callable[..., Any], app: str, engine: str
) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        pytest.skip("socket.io-client is not installed: run `npm ci --prefix tests/js`")
    cluster = start_cluster(app=app_on(engine, f"tests.apps.fastping:{app}"), workers=WORKERS)
    interval, _ = APPS[app]
    # One client per transport set, alternating slots.
    ips = [ips_for_slot(i % WORKERS, WORKERS)[i // WORKERS] for i in range(len(TRANSPORTS))]
    tokens = [uuid.uuid4().hex for _ in TRANSPORTS]
    specs = [
        {
            "url": cluster.url,
            "localAddress": ip,
            "transports": transports,
            "timeout": 10000,
            "actions": [
                {"op": "sleep", "ms": STAY_MS},
                {"op": "state"},
                {"op": "emit", "event": "echo", "args": [token]},
                {"op": "emit", "event": "whoami"},
            ],
        }
        for ip, transports, token in zip(ips, TRANSPORTS, tokens, strict=True)
    ]
    outputs = run_node_clients(specs)
    for ip, transports, token, lines in zip(ips, TRANSPORTS, tokens, outputs, strict=True):
        where = f"{transports} from {ip}: {lines}"
        ops = [line["op"] for line in lines]
        assert ops == ["connect", "sleep", "state", "emit", "emit", "done"], where
        state = lines[2]
        assert state["connected"] is True, where
        assert state["disconnects"] == [], where
        assert state["ping_interval"] == interval, where
        # Several ping intervals passed while the session stayed up.
        assert state["pings"] >= 2, where
        assert lines[3]["ack"] == token, where
        assert lines[4]["ack"]["slot"] == expected_slot(ip, WORKERS), where
