"""sioctl on a Redis Cluster (``--redis redis+cluster://...``, issue 20): three masters of the
test's own (tests.support.redis_cluster); two sioctl nodes of either engine exchange
broadcasts, room emits and targeted emits over sharded pub/sub, their channels on at least two
shards; a slot resharded under a worker's own channel (Redis unsubscribes it, emits to it get
MOVED) is followed by the listener and the publisher. The framework's id claims and the
gateway's registry work on it too (Redis sessions and id claims in process:
test_framework_async_redis.py, its ``cluster`` parameter)."""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sioctl.cli.status import topology_line
from sioctl.worker.gateway.external import ExternalGateway
from sioctl.worker.gateway.plugin import NAMESPACE
from sioctl.worker.gateway.wire import (
    BROADCAST,
    DENY,
    EXCHANGE,
    RE_CONNECT_AND_UPDATES,
    RE_CONNECT_UPDATED,
    RESPONSE_MESSAGE,
    SEND_TO_OTHERS,
)
from tests.support.clients import ips_for_slot, make_client, wait_until, whoami
from tests.support.cluster import ENGINES, MESSAGING_APPS
from tests.support.gateway import APP_DIR as GW_APP_DIR
from tests.support.gateway import (
    CENTRAL_KEY,
    SIG_APP,
    SLOT0,
    SLOT1,
    TIMEOUT,
    action_of,
    assert_success,
)
from tests.support.messaging import barrier, inbox_for, new_tag
from tests.support.paths import APPS_DIR
from tests.support.redis_cluster import RedisClusterGroup

MOVE_TIMEOUT = 20.0
FW_APP_DIRS = {"eventlet": APPS_DIR / "fwapp", "asyncio": APPS_DIR / "fwapp_async"}


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterGroup]:
    group = RedisClusterGroup(tmp_path / "redis-cluster")
    try:
        yield group
    finally:
        group.stop()


def _where(group: RedisClusterGroup) -> dict[str, int]:
    """Every shard channel with subscribers, and the port of the node serving it."""
    return {channel: port for port in group.ports for channel in group.shard_channels(port)}


@pytest.mark.parametrize("engine", ENGINES)
def test_two_nodes_exchange_messages_over_sharded_pubsub(
    redis_cluster: RedisClusterGroup, start_cluster: Any, connect: Any, engine: str
) -> None:
    nodes = [start_cluster(MESSAGING_APPS[engine], workers=1, redis_url=redis_cluster.url)
             for _ in range(2)]
    assert "redis+cluster://127.0.0.1:" in nodes[0].log_text()
    a = connect(nodes[0].url, "127.0.0.2", ("websocket",))
    b = connect(nodes[1].url, "127.0.0.3", ("websocket",))
    ia, ib = whoami(a), whoami(b)
    assert ia["host_id"] != ib["host_id"]
    inboxes = [inbox_for(a), inbox_for(b)]
    # A broadcast from node 0 reaches both nodes' clients.
    tag = new_tag("broadcast")
    assert a.call("send_to", {"to": None, "n": 5, "tag": tag}, timeout=10) == 5
    for inbox in inboxes:
        assert sorted(inbox.wait(tag, 5)) == list(range(5))
    # A room emit from node 0 reaches node 1's client in the room.
    assert b.call("join", "cluster-room", timeout=10)
    tag = new_tag("room")
    assert a.call("send_to", {"to": "cluster-room", "n": 5, "tag": tag}, timeout=10) == 5
    assert sorted(inboxes[1].wait(tag, 5)) == list(range(5))
    # A targeted emit goes to its owner's own channel, on the shard of its slot.
    tag = new_tag("targeted")
    assert a.call("send_to", {"to": ib["sid"], "n": 20, "tag": tag}, timeout=10) == 20
    assert sorted(inboxes[1].wait(tag, 20)) == list(range(20))
    where = _where(redis_cluster)
    assert {"socketio", ia["own_channel"], ib["own_channel"]} <= set(where), where
    for channel, port in where.items():
        assert redis_cluster.port_of_slot(redis_cluster.keyslot(channel)) == port
    # Node 1's channel moved to a shard that serves neither node 0's channel nor where it is:
    # Redis unsubscribes node 1's listener (it subscribes again on the new shard) and node
    # 0's publisher, whose slot map is stale, gets MOVED and follows it.
    slot = redis_cluster.keyslot(ib["own_channel"])
    away = [p for p in redis_cluster.ports if p not in (where[ia["own_channel"]],
                                                      where[ib["own_channel"]])][0]
    redis_cluster.move_slot(slot, away)
    wait_until(lambda: _where(redis_cluster).get(ib["own_channel"]) == away, MOVE_TIMEOUT,
               what="node 1's listener on its channel's new shard")
    tag = new_tag("after-move")
    assert a.call("send_to", {"to": ib["sid"], "n": 20, "tag": tag}, timeout=10) == 20
    assert sorted(inboxes[1].wait(tag, 20)) == list(range(20))
    barrier(a, b, ib["sid"])
    where = _where(redis_cluster)
    assert where[ia["own_channel"]] != where[ib["own_channel"]], where
    assert len(set(where.values())) >= 2, where
    assert "subscribed again" in nodes[1].log_text()
    stats = b.call("manager_stats", timeout=10)
    assert stats["subscribed"] and stats["resubscriptions"] >= 1, stats
    # Status shows the cluster, its shards as they are now (the moved slot counted on its new
    # master) and its health; the line `sioctl status` prints says so.
    counts = {f"127.0.0.1:{port}": len(_slots_of(redis_cluster, port))
              for port in redis_cluster.ports}

    def current(status: dict[str, Any]) -> bool:
        topology = status["slots"][0]["messaging"]["topology"]
        return topology.get("state") == "ok" and {
            s["master"]: s["slots"] for s in topology["shards"]} == counts

    status = nodes[0].wait_for(current, timeout=30, what="the shards as they are now")
    line = topology_line(status["slots"])
    assert line.startswith("cluster ok, 3 shards: ") and f"127.0.0.1:{away} (" in line, line


def _slots_of(group: RedisClusterGroup, port: int) -> list[int]:
    """The slots the master on ``port`` serves."""
    return [slot for first, last, master, *_ in
            group.client(port).execute_command("CLUSTER SLOTS") if int(master[1]) == port
            for slot in range(first, last + 1)]


@pytest.mark.parametrize("engine", ENGINES)
def test_framework_ids_are_claimed_on_a_cluster(
    redis_cluster: RedisClusterGroup, start_cluster: Any, engine: str
) -> None:
    """``io.generate_id``: an id claimed on one worker is refused on the other, and free once
    its holder left (the claims are keys on the cluster's shards)."""
    cluster = start_cluster(app=str(FW_APP_DIRS[engine]), redis_url=redis_cluster.url,
                            extra_args=["--env", "ids"], env={"FWAPP_TRACE": os.devnull})
    made: list[Any] = []

    def client(slot: int) -> Any:
        made.append(make_client(ips_for_slot(slot, 2)[0], reconnection=False))
        return made[-1]

    try:
        first = client(0)
        first.connect(f"{cluster.url}?token=good&uid=7")
        key = "socketio:ids:/:user-7"
        owner = redis_cluster.client(redis_cluster.port_of_slot(redis_cluster.keyslot(key)))
        assert owner.get(key) is not None
        second = client(1)
        with pytest.raises(Exception, match="failed to connect"):
            second.connect(f"{cluster.url}?token=good&uid=7")
        first.disconnect()
        later = client(1)
        wait_until(lambda: _connects(later, f"{cluster.url}?token=good&uid=7"), 10,
                   what="user-7 to be free")
        assert later.get_sid("/") == "user-7"
    finally:
        for c in made:
            c.shutdown()


def _connects(client: Any, url: str) -> bool:
    try:
        client.connect(url)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("engine", ENGINES)
def test_the_gateway_on_a_cluster(
    redis_cluster: RedisClusterGroup, start_cluster: Any, client: Any, engine: str
) -> None:
    """The gateway's registry (its scripts and transactions use several keys: one hash slot,
    ``{socketio:gw}``): exchanges across workers by socket id and userId, and a reconnect that
    takes its old userId over."""
    cluster = start_cluster(app=str(GW_APP_DIR), workers=2, redis_url=redis_cluster.url,
                            extra_args=["--env", "prod"], env={"GWAPP_CENTRAL_KEY": CENTRAL_KEY})
    sender, target = client(SLOT0[0]), client(SLOT1[0])
    sender.connect(cluster.url)
    target.connect(cluster.url)
    registry = redis_cluster.client(redis_cluster.port_of_slot(
        redis_cluster.keyslot("{socketio:gw}")))
    assert registry.hget(f"{{socketio:gw}}:client:{target.sid}", "user") == \
        target.user_id.encode()
    for address in (target.sid, target.user_id):
        assert_success(sender.request(SEND_TO_OTHERS, target=address, payload=address), address)
        assert target.expect(EXCHANGE)["data"]["payload"] == address
    old_user = target.user_id
    target.sio.disconnect()
    wait_until(lambda: action_of(sender.request(SEND_TO_OTHERS, target=old_user, payload=0))
               == DENY, TIMEOUT, interval=0.1, what="the old socket to leave the registry")
    again = client(SLOT1[1])
    again.connect(cluster.url)
    updated = again.request(RE_CONNECT_AND_UPDATES, user_id=old_user)
    assert action_of(updated) == RE_CONNECT_UPDATED
    assert_success(sender.request(SEND_TO_OTHERS, target=old_user, payload="after"), old_user)
    assert again.expect(EXCHANGE)["data"]["payload"] == "after"

    # A backend's ExternalGateway (a cron job, a web backend) reaches them through the cluster:
    # its emits are SPUBLISHed on the shard the workers SSUBSCRIBE.
    external = ExternalGateway(redis_cluster.url)
    assert external.send(old_user, {"invoice": 7}, app=SIG_APP, user_id="billing")
    message = again.expect(EXCHANGE)
    assert message["data"]["payload"] == {"invoice": 7}
    assert message["meta"]["client"] == "external" and message["meta"]["userId"] == "billing"
    assert not external.send("nobody-online", {}, app=SIG_APP)
    external.broadcast(SIG_APP, "maintenance at noon")
    for peer in (sender, again):
        assert peer.expect(BROADCAST)["data"]["payload"] == "maintenance at noon"
    # Its plain emit, to a socket id and to everyone in a namespace.
    note = {"meta": {"target": again.sid}, "data": {"action": "note", "payload": "to one"}}
    external.emit(RESPONSE_MESSAGE, note, to=again.sid, namespace=NAMESPACE)
    assert again.expect("note")["data"]["payload"] == "to one"
    external.emit(RESPONSE_MESSAGE, {**note, "data": {"action": "note", "payload": "to all"}},
                  namespace=NAMESPACE)
    for peer in (sender, again):
        assert peer.expect("note")["data"]["payload"] == "to all"


@pytest.mark.parametrize("engine", ENGINES)
def test_the_streams_transport_on_a_cluster(
    redis_cluster: RedisClusterGroup, start_cluster: Any, connect: Any, engine: str
) -> None:
    """``--redis-transport streams``: the guarded XADD reads an owner record and writes a
    worker's stream, the reader's XREAD reads two streams: every key of the manager is in the
    slot of ``{socketio}``, and targeted emits and broadcasts go through."""
    nodes = [start_cluster(MESSAGING_APPS[engine], workers=1, redis_url=redis_cluster.url,
                           extra_args=["--redis-transport", "streams"]) for _ in range(2)]
    a = connect(nodes[0].url, "127.0.0.2", ("websocket",))
    b = connect(nodes[1].url, "127.0.0.3", ("websocket",))
    ia, ib = whoami(a), whoami(b)
    assert ib["own_channel"].startswith("{socketio}:w:")
    tag = new_tag("streams-targeted")
    assert a.call("send_to", {"to": ib["sid"], "n": 30, "tag": tag}, timeout=10) == 30
    assert sorted(inbox_for(b).wait(tag, 30)) == list(range(30))
    tag = new_tag("streams-broadcast")
    assert b.call("send_to", {"to": None, "n": 5, "tag": tag}, timeout=10) == 5
    for client in (a, b):
        assert sorted(inbox_for(client).wait(tag, 5)) == list(range(5))
    port = redis_cluster.port_of_slot(redis_cluster.keyslot("{socketio}"))
    keys = {k.decode() for k in redis_cluster.client(port).keys("{socketio}*")}
    assert f"{ib['own_channel']}:stream" in keys and "{socketio}:stream" in keys, keys
    assert f"{{socketio}}:owner:/:{ia['sid']}" in keys, keys


FAILOVER_TIMEOUT = 30.0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_shard_failover_is_followed(
    tmp_path: Path, start_cluster: Any, connect: Any, engine: str
) -> None:
    """The master serving a worker's own channel is SIGKILLed; its replica is promoted
    (cluster-node-timeout 2 s); the worker subscribes on the new master and targeted emits to
    it arrive again, sent by a publisher whose connection to the dead master failed."""
    group = RedisClusterGroup(tmp_path / "redis-cluster", replicas=1)
    try:
        nodes = [start_cluster(MESSAGING_APPS[engine], workers=1, redis_url=group.url)
                 for _ in range(2)]
        a = connect(nodes[0].url, "127.0.0.2", ("websocket",))
        b = connect(nodes[1].url, "127.0.0.3", ("websocket",))
        ib = whoami(b)
        inbox = inbox_for(b)
        tag = new_tag("before-failover")
        assert a.call("send_to", {"to": ib["sid"], "n": 10, "tag": tag}, timeout=10) == 10
        assert sorted(inbox.wait(tag, 10)) == list(range(10))
        slot = group.keyslot(ib["own_channel"])
        dead = group.port_of_slot(slot)
        alive = next(p for p in group.ports if p != dead)
        group.kill(dead)
        wait_until(lambda: _served_elsewhere(group, slot, dead, alive), FAILOVER_TIMEOUT,
                   what="a replica promoted for the dead master's slots")
        promoted = group.port_of_slot(slot, ask=alive)

        def arrives() -> bool:
            tag = new_tag("after-failover")
            a.call("send_to", {"to": ib["sid"], "n": 1, "tag": tag}, timeout=10)
            try:
                inbox.wait(tag, 1, timeout=1.0)
            except AssertionError:
                return False
            return True

        wait_until(arrives, FAILOVER_TIMEOUT, what="targeted emits through the new master")
        assert ib["own_channel"] in group.shard_channels(promoted)
        tag = new_tag("after-failover")
        assert a.call("send_to", {"to": ib["sid"], "n": 20, "tag": tag}, timeout=10) == 20
        assert sorted(inbox.wait(tag, 20)) == list(range(20))
        assert "subscribed again" in nodes[1].log_text()
    finally:
        group.stop()


def _served_elsewhere(group: RedisClusterGroup, slot: int, dead: int, ask: int) -> bool:
    try:
        return group.port_of_slot(slot, ask=ask) != dead and \
            group.client(ask).cluster("info")["cluster_state"] == "ok"
    except Exception:
        return False


@pytest.mark.parametrize("engine", ENGINES)
def test_external_emits_reach_recovering_workers_on_a_cluster(
    redis_cluster: RedisClusterGroup, start_cluster: Any, connect: Any, engine: str
) -> None:
    """With connection state recovery the workers' channel is ``{socketio}`` (one slot with
    the session records): ``ExternalGateway.emit`` reaches them there too, once."""
    cluster = start_cluster(MESSAGING_APPS[engine], workers=1, redis_url=redis_cluster.url,
                            extra_args=["--connection-state-recovery", "30"])
    client = connect(cluster.url, "127.0.0.2", ("websocket",))
    assert whoami(client)["own_channel"].startswith("{socketio}:w:")
    news = client.record("news")
    external = ExternalGateway(redis_cluster.url)
    external.emit("news", "to one", to=client.get_sid("/"))
    external.emit("news", "to all")
    assert [news.get(timeout=TIMEOUT), news.get(timeout=TIMEOUT)] == ["to one", "to all"]
    with pytest.raises(queue.Empty):
        news.get(timeout=1.0)
