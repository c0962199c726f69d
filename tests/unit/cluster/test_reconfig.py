"""What a HUP may change (cluster/reconfig.py): values the workers read are applied, what the
master holds since its start is reported and kept, an unnamed engine keeps the running one."""

from __future__ import annotations

from sioctl.cluster.reconfig import compare
from sioctl.cluster.settings import Settings


def test_worker_settings_apply_and_master_settings_need_a_restart() -> None:
    running = Settings(app="a:b", worker_class="eventlet", workers=2, loglevel="info")
    fresh = Settings(app="a:b", workers=3, loglevel="debug", binds=["127.0.0.1:9"],
                     access_log_format="%(h)s", metrics_bind="127.0.0.1:10")
    changes = compare(running, fresh)
    assert changes.apply == {"loglevel": "debug", "access_log_format": "%(h)s"}
    assert sorted(changes.need_restart) == ["binds", "metrics_bind"]


def test_a_named_engine_applies() -> None:
    running = Settings(app="a:b", worker_class="eventlet")
    assert compare(running, Settings(app="a:b", worker_class="asyncio")).apply == {
        "worker_class": "asyncio"}
    assert compare(running, Settings(app="a:b")).apply == {}
