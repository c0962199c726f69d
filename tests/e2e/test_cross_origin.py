"""Cross-origin refusals say how to allow origins (issue 16): python-socketio's same-origin
default stays, but its bare "Not an accepted origin" 400 becomes one that names io.init.cors and
cors_allowed_origins, in the answer and once in the log; on the eventlet engine (a real cluster,
2 workers) and on the asyncio shell (in process, through python-socketio's ASGIApp).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sioctl.worker.protocol.core.eio_rules import origin_refusal
from tests.support.asgi_client import Client, make_app, run
from tests.support.clients import bound_session, ips_for_slot

PAGE = "https://h5.example"


def test_the_rule() -> None:
    assert origin_refusal(None, []) is None  # no Origin: not a browser page
    assert origin_refusal(PAGE, None) is None  # every origin allowed
    assert origin_refusal(PAGE, [PAGE]) is None
    message = origin_refusal(PAGE, ["http://127.0.0.1:7001"])
    assert message is not None and message.startswith(f"{PAGE} is not an accepted origin")
    assert "io.init.cors" in message and "cors_allowed_origins" in message


def _app_dir(root: Path, config: str) -> Path:
    (root / "config").mkdir(parents=True)
    (root / "config" / "config_default.py").write_text(config)
    (root / "app").mkdir()
    (root / "app" / "router.py").write_text("def setup(app):\n    pass\n")
    return root


def _handshake(url: str, source_ip: str, origin: str) -> Any:
    return bound_session(source_ip).get(f"{url}/socket.io/?EIO=4&transport=polling",
                                        headers={"Origin": origin}, timeout=10)


def test_a_cluster_refuses_other_origins_saying_how_to_allow_them(
    start_cluster: Any, tmp_path: Path
) -> None:
    app = _app_dir(tmp_path / "app", "keys = 'k'\n")
    cluster = start_cluster(app=str(app))
    for slot in (0, 1):
        ip = ips_for_slot(slot, 2)[0]
        refused = _handshake(cluster.url, ip, PAGE)
        assert refused.status_code == 400
        assert "io.init.cors" in refused.json() and PAGE in refused.json()
        # Another page too; the server's own origin is still accepted.
        assert _handshake(cluster.url, ip, "https://other.example").status_code == 400
        assert _handshake(cluster.url, ip, cluster.url).status_code == 200
    log = cluster.log_text()
    # Once per worker, whatever the number of refused pages.
    assert log.count("is not an accepted origin: only the server's own origin is") == 2, log
    assert "allow others with io.init.cors" in log.lower()


def test_the_configured_origins_are_let_in(start_cluster: Any, tmp_path: Path) -> None:
    app = _app_dir(tmp_path / "app", f"io = {{'init': {{'cors': [{PAGE!r}]}}}}\n")
    cluster = start_cluster(app=str(app), workers=1)
    assert _handshake(cluster.url, "127.0.0.2", PAGE).status_code == 200
    assert _handshake(cluster.url, "127.0.0.2", "https://other.example").status_code == 400


@pytest.mark.parametrize("cors, status", [(None, 400), ([PAGE], 200), ("*", 200)])
def test_the_async_shell_says_the_same(cors: Any, status: int) -> None:
    async def scenario() -> None:
        _, app = make_app(cors_allowed_origins=cors)
        got, body = await Client(app).request("GET", "EIO=4&transport=polling",
                                              headers={"origin": PAGE, "host": "127.0.0.1"})
        assert got == status, body
        if status == 400:
            assert b"io.init.cors" in body

    run(scenario())
