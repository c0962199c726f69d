"""The gateway's registry is written again as soon as the cluster's Redis is back.

A Redis restarted without its data (the embedded one, say) has forgotten who is online; the
worker's manager notices it is back and calls the plugins' ``redis_back`` hook (the framework
registers it, issue 14's plugin seam), so the gateway rewrites its sockets at once instead of at
its next periodic refresh (every REFRESH_EVERY = 20 s).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sioctl.worker.gateway.plugin import REFRESH_EVERY
from tests.support.clients import wait_until
from tests.support.cluster import ENGINES
from tests.support.gateway import APP_DIR, CENTRAL_KEY, GwClient
from tests.support.messaging import OwnRedis

# Well under REFRESH_EVERY: only the redis_back hook can have rewritten the entry by then.
BACK_WITHIN = REFRESH_EVERY / 2
# A key that only a restart without the data removes.
SENTINEL = "test:before-the-restart"


# The redis_back hooks come from sioctl's manager (when_redis_back), on both engines.
@pytest.mark.parametrize("engine", ENGINES)
def test_the_registry_is_written_again_when_redis_is_back(
    own_redis: OwnRedis, start_cluster: Callable[..., Any]
) -> None:
    cluster = start_cluster(app=str(APP_DIR), workers=1, redis_url=own_redis.url,
                            extra_args=["--env", "prod"], env={"GWAPP_CENTRAL_KEY": CENTRAL_KEY})
    client = GwClient("127.0.0.1")
    try:
        client.connect(cluster.url)
        key = f"socketio:gw:client:{client.sid}"
        assert own_redis.client().hget(key, "user") == client.user_id.encode()
        own_redis.client().set(SENTINEL, 1)
        own_redis.stop()
        own_redis.start()
        # The restart lost everything, the entry included. (Checked on a key of the test's own:
        # the entry itself may be back already, when the hook under test was quicker than this
        # process, as it is under a loaded machine.)
        assert not own_redis.client().exists(SENTINEL)
        wait_until(lambda: own_redis.client().hget(key, "user") == client.user_id.encode(),
                   BACK_WITHIN, what="the gateway to write its socket again")
        assert client.sio.connected
    finally:
        client.sio.shutdown()
