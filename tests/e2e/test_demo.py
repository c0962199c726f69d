"""The README's demo (examples/chat, an app directory) serves its page and chats across workers;
scripts/demo-client.py chats from an address on another worker; the page in headless Chromium
shows a message said on another worker."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
from typing import Any

import pytest
import requests

from tests.support.chromium import HeadlessChromium
from tests.support.clients import ips_for_slot
from tests.support.paths import REPO_ROOT

DEMO = REPO_ROOT / "examples" / "chat"
DEMO_CLIENT = REPO_ROOT / "scripts" / "demo-client.py"


def say_from_another_worker(url: str, name: str, text: str) -> str:
    """Runs scripts/demo-client.py to say ``text``; returns the worker it says it was served by
    ("slot 1 (pid 4242)"), after checking that it is not 127.0.0.1's."""
    result = subprocess.run(
        [sys.executable, str(DEMO_CLIENT), "--url", url, "--name", name, "--say", text],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.match(r".*served by (slot \d+ \(pid \d+\)); a browser on 127\.0\.0\.1 is "
                     r"served by (slot \d+) ", result.stdout)
    assert found is not None, result.stdout
    worker, browser_slot = found.groups()
    assert not worker.startswith(browser_slot + " "), result.stdout
    # It heard its own message back, from its own worker.
    assert f"{name} via {worker}: {text}" in result.stdout
    return worker


def test_demo_chat_crosses_workers(start_cluster: Any, connect: Any) -> None:
    cluster = start_cluster(app=str(DEMO))
    page = requests.get(cluster.url + "/", timeout=10)
    assert page.status_code == 200 and "sioctl demo chat" in page.text
    # A name field on the page, no prompt() dialog (which a headless browser cannot answer).
    assert 'id="name"' in page.text and "prompt(" not in page.text
    assert requests.get(cluster.url + "/nothing-here", timeout=10).status_code == 404

    ann = connect(cluster.url + "?name=ann", ips_for_slot(0, 2)[0])
    heard: queue.Queue[Any] = ann.record("said")
    bob = connect(cluster.url + "?name=bob", ips_for_slot(1, 2)[0])
    assert heard.get(timeout=10) == {"from": "*", "text": "bob joined"}
    assert bob.call("say", "hi", timeout=10) == "ok"
    message = heard.get(timeout=10)
    assert message["from"] == "bob" and message["text"] == "hi"
    assert message["worker"].startswith("slot 1 ")  # said on the other worker, heard here


def test_demo_refuses_a_chatter_without_a_name(start_cluster: Any, connect: Any) -> None:
    cluster = start_cluster(app=str(DEMO))
    with pytest.raises(Exception, match="failed to connect"):
        connect(cluster, "127.0.0.2", reconnection=False)


def test_demo_client_chats_from_another_worker(start_cluster: Any, connect: Any) -> None:
    cluster = start_cluster(app=str(DEMO))
    # ann where a browser on this machine would be: 127.0.0.1.
    ann = connect(cluster.url + "?name=ann", "127.0.0.1")
    heard: queue.Queue[Any] = ann.record("said")
    ann_worker = requests.get(cluster.url + "/whoami", timeout=10).text.strip()
    worker = say_from_another_worker(cluster.url, "bob", "hello ann")
    assert worker.split(" (")[0] != ann_worker.split(" (")[0]
    assert heard.get(timeout=10) == {"from": "*", "text": "bob joined"}
    assert heard.get(timeout=10) == {"from": "bob", "worker": worker, "text": "hello ann"}


def test_demo_page_in_headless_chromium_hears_another_worker(start_cluster: Any) -> None:
    cluster = start_cluster(app=str(DEMO))
    with HeadlessChromium(cluster.url + "/?name=ann") as browser:
        me = browser.wait_for("document.getElementById('me').textContent",
                              lambda text: "connected as" in text)
        assert me.startswith("ann, connected as ")
        page_worker = browser.wait_for("document.getElementById('worker').textContent",
                                       lambda text: text.startswith("slot "))
        worker = say_from_another_worker(cluster.url, "bob", "hello from the terminal")
        assert worker.split(" (")[0] != page_worker.split(" (")[0]
        log = browser.wait_for("document.getElementById('log').innerText",
                               lambda text: "hello from the terminal" in text)
        # Said on the other worker, shown by the page through this one.
        assert f"bob via {worker}: hello from the terminal" in log.splitlines()
