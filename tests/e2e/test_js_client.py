"""The official JavaScript socket.io-client through the master (tests/js/client.js)."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.clients import BoundClient, expected_slot, ips_for_slot, wait_for_upgrade, whoami
from tests.support.paths import JS_DIR

WORKERS = 2
LINE_TIMEOUT = 20.0


class NodeClient:
    """tests/js/client.js (or ``script``) running in node; its JSON output lines read as they
    come."""

    def __init__(self, spec: dict[str, Any], script: str = "client.js") -> None:
        self.proc = subprocess.Popen(
            ["node", str(JS_DIR / script), json.dumps(spec)],
            cwd=JS_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line:
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, timeout: float = LINE_TIMEOUT) -> dict[str, Any]:
        """The next output line; fails on an error line, end of output or timeout."""
        try:
            item = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"node client said nothing for {timeout:g}s after {self.seen}")
        if item is None:
            self.proc.wait(5)
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            pytest.fail(f"node client ended after {self.seen}; stderr:\n{stderr}")
        self.seen.append(item)
        if item.get("op") == "error":
            pytest.fail(f"node client failed: {item['message']} after {self.seen}")
        return item

    def expect(self, op: str) -> dict[str, Any]:
        item = self.next()
        assert item["op"] == op, f"expected {op!r}, got {item}"
        return item

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(autouse=True)
def node_ready() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    assert (JS_DIR / "node_modules" / "socket.io-client").is_dir(), (
        "socket.io-client is not installed: run `npm ci --prefix tests/js`"
    )


@pytest.mark.parametrize("transports", [["polling", "websocket"], ["websocket"]])
def test_js_client_through_the_master(
    start_cluster: Callable[..., Any],
    connect: Callable[..., BoundClient],
    transports: list[str],
) -> None:
    cluster = start_cluster(workers=WORKERS)
    js_ip = ips_for_slot(1, WORKERS)[0]
    js_slot = expected_slot(js_ip, WORKERS)
    # A python client on the other worker sends the broadcast.
    python_client = connect(cluster, ips_for_slot(0, WORKERS)[0])
    wait_for_upgrade(python_client)
    assert whoami(python_client)["slot"] != js_slot

    echo = {"hello": "from js", "n": [1, 2, 3]}
    node = NodeClient(
        {
            "url": cluster.url,
            "localAddress": js_ip,
            "transports": transports,
            "timeout": 15000,
            "actions": [
                {"op": "upgrade"},
                {"op": "emit", "event": "whoami"},
                {"op": "emit", "event": "echo", "args": [echo]},
                {"op": "ready"},
                {"op": "wait", "event": "news"},
            ],
        }
    )
    try:
        connected = node.expect("connect")
        assert connected["opened_with"] == transports[0]
        assert node.expect("upgrade")["transport"] == "websocket"
        answer = node.expect("emit")["ack"]
        assert answer["slot"] == js_slot
        assert answer["pid"] == cluster.worker_pids()[js_slot]
        assert answer["remote_addr"] == js_ip
        assert answer["sid"] == connected["id"]
        assert node.expect("emit")["ack"] == echo
        node.expect("ready")

        token = f"python-{uuid.uuid4().hex}"
        assert python_client.call("broadcast", token, timeout=10) is True
        assert node.expect("wait")["args"] == [token]
        node.expect("done")
        assert node.proc.wait(10) == 0
    finally:
        node.close()
