"""The README's demo (examples/chat, an app directory) serves its page and chats across workers."""

from __future__ import annotations

import queue
from typing import Any

import pytest
import requests

from tests.support.clients import ips_for_slot
from tests.support.paths import REPO_ROOT

DEMO = REPO_ROOT / "examples" / "chat"


def test_demo_chat_crosses_workers(start_cluster: Any, connect: Any) -> None:
    cluster = start_cluster(app=str(DEMO))
    page = requests.get(cluster.url + "/", timeout=10)
    assert page.status_code == 200 and "sioctl demo chat" in page.text
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
