"""An app that gives its server its own JSON module (``json=``) keeps it on both engines: the
workers' engineio.json with its decoder and encoder made once (worker/protocol/core/
json_codec.py, installed at boot) never decodes or encodes that app's packets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.apps.ownjson_common import ENCODED, MARKED
from tests.support.clients import BoundClient, ips_for_slot, wait_for_upgrade
from tests.support.cluster import ENGINES, app_on

APP = "tests.apps.ownjson:sio"
TIMEOUT = 10.0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("transports", [("polling",), ("polling", "websocket")])
def test_the_app_s_own_json_decodes_and_encodes_its_packets(
    engine: str, transports: tuple[str, ...], start_cluster: Callable[..., Any],
    connect: Callable[..., BoundClient],
) -> None:
    cluster = start_cluster(app=app_on(engine, APP), workers=1)
    client = connect(cluster, ips_for_slot(0, 1)[0], transports)
    if "websocket" in transports:
        wait_for_upgrade(client)
    answer = client.call("echo", {"f": 1.5, "s": MARKED, "n": 12}, timeout=TIMEOUT)
    # Decoded by the app's loads (floats as strings), encoded by its dumps (the mark rewritten).
    assert answer == {"f": "1.5", "s": ENCODED, "n": 12}
