"""The official JavaScript socket.io-client run by node (tests/js/client.js, client_v2.js), for the
end-to-end tests: ``NodeClient(spec)`` starts one and reads its JSON output lines."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from typing import Any

import pytest

from tests.support.paths import JS_DIR

LINE_TIMEOUT = 20.0


def require_node(package: str = "socket.io-client") -> None:
    """Skip the test when node is not installed; fail it when the npm ``package`` is missing
    (``npm ci --prefix tests/js`` installs it)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    assert (JS_DIR / "node_modules" / package).is_dir(), (
        f"{package} is not installed: run `npm ci --prefix tests/js`"
    )


class NodeClient:
    """tests/js/client.js (or ``script``) running in node; its JSON output lines read as they
    come. ``interactive``: more actions can be sent (:meth:`send`) after the spec's, until
    :meth:`end`."""

    def __init__(self, spec: dict[str, Any], script: str = "client.js",
                 interactive: bool = False) -> None:
        if interactive:
            spec = {**spec, "interactive": True}
        self.proc = subprocess.Popen(
            ["node", str(JS_DIR / script), json.dumps(spec)],
            cwd=JS_DIR,
            stdin=subprocess.PIPE if interactive else subprocess.DEVNULL,
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

    def send(self, action: dict[str, Any]) -> dict[str, Any]:
        """Run one more action (an interactive client); its output line."""
        assert self.proc.stdin is not None, "not an interactive client"
        self.proc.stdin.write(json.dumps(action) + "\n")
        self.proc.stdin.flush()
        return self.expect(action["op"])

    def end(self) -> None:
        """Close an interactive client's stdin: it disconnects, says done and exits 0."""
        assert self.proc.stdin is not None, "not an interactive client"
        self.proc.stdin.close()
        self.expect("done")
        assert self.proc.wait(10) == 0

    def close(self) -> None:
        """Kill the client if it still runs, then close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        # The reader reaches the end of the output once node is gone: closing stdout under it
        # made its read raise (an unhandled-thread warning in the test that closed it).
        self._reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
