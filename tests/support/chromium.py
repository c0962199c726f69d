"""Debian's Chromium, headless, driven over the DevTools protocol (tests/e2e/test_demo.py).

``HeadlessChromium(url)`` opens one page; ``wait_for(expression, predicate)`` evaluates a
JavaScript expression in it until the predicate holds. The DevTools websocket is spoken with
websocket-client (already a test dependency), so no browser driver or npm package is needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

CHROMIUM = "/usr/bin/chromium"
# Required in CI (.ci/run sets it): there a missing Chromium fails instead of skipping.
REQUIRED_ENV = "SIOCTL_TEST_CHROMIUM"
# The flags of a headless run on a machine without a network or a screen: no sandbox (root),
# no GPU, and none of the background connections (updates, sync, safe browsing) the closed
# network would refuse.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-crash-reporter", "--disable-breakpad", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
# Chromium's first page on a loaded machine (the whole suite on 2 cores) once took over 20 s.
START_TIMEOUT = 45.0


def chromium_binary() -> str:
    """/usr/bin/chromium; skips the test when it is missing, unless CI requires it."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    reason = ("Debian's chromium is not installed at /usr/bin/chromium "
              "(scripts/setup.sh installs it with apt-get)")
    if os.environ.get(REQUIRED_ENV) == "required":
        pytest.fail(reason)
    pytest.skip(reason)


class HeadlessChromium:
    """A headless Chromium showing ``url``, with its profile in a temporary directory."""

    def __init__(self, url: str) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="chr"))
        self.stderr = open(self.profile / "stderr.txt", "wb")  # noqa: SIM115 (closed in close())
        # A session of its own: close() ends the browser and its helper processes as a group.
        self.proc = subprocess.Popen(
            [chromium_binary(), *FLAGS, f"--user-data-dir={self.profile}", url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
            start_new_session=True,
            env={**os.environ, "HOME": str(self.profile), "XDG_CONFIG_HOME": str(self.profile)},
        )
        self.ws: websocket.WebSocket | None = None
        self._id = 0
        try:
            self.ws = websocket.create_connection(self._page_socket(url), timeout=10,
                                                  suppress_origin=True)
        except BaseException:
            self.close()
            raise

    def _page_socket(self, url: str) -> str:
        """The DevTools websocket address of the page showing ``url``."""
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"chromium exited ({self.proc.returncode}): {self.log()}")
            if port_file.exists() and port_file.read_text().strip():
                port = port_file.read_text().split()[0]
                targets = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
                pages = [t for t in targets if t.get("type") == "page"
                         and t.get("url", "").startswith(url.split("?")[0])]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.1)
        pytest.fail(f"chromium opened no page for {url} within {START_TIMEOUT:g}s: {self.log()}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (None if it threw)."""
        assert self.ws is not None
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": "Runtime.evaluate",
                                 "params": {"expression": expression, "returnByValue": True}}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._id:
                return reply.get("result", {}).get("result", {}).get("value")

    def wait_for(self, expression: str, predicate: Callable[[Any], bool],
                 timeout: float = 20.0) -> Any:
        """Evaluates ``expression`` until ``predicate`` holds for its value; returns it."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value is not None and predicate(value):
                return value
            time.sleep(0.1)
        pytest.fail(f"{expression} never held within {timeout:g}s; last value: {value!r}")

    def log(self) -> str:
        """The end of what Chromium wrote to stderr (its D-Bus complaints left out)."""
        self.stderr.flush()
        lines = (self.profile / "stderr.txt").read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if "dbus" not in line)[-2000:]

    def close(self) -> None:
        """Ends the browser's process group and removes its profile."""
        if self.ws is not None:
            with contextlib.suppress(Exception):
                self.ws.close()
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> HeadlessChromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
