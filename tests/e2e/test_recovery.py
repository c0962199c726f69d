"""Connection state recovery (issue 18) with the official socket.io-client@4 (tests/js/recovery.js)
against a 2-worker cluster and a real redis-server: a consumer whose worker is SIGKILLed in the
middle of a broadcast stream comes back as the same socket and ends with every event once, in
order; one away longer than the window gets a new session.
Each test runs on both engines (the eventlet and the asyncio shell of the same core).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
import requests

from sioctl.worker.messaging import recovery
from tests.support.clients import BoundClient, expected_slot, ips_for_slot, wait_until, whoami
from tests.support.cluster import ENGINES
from tests.support.metrics import sample
from tests.support.nginx import NODE_ARGS, SOURCE_IPS, Front, NginxServer
from tests.support.node import NodeClient, require_node
from tests.support.paths import APPS_DIR
from tests.support.ports import free_port

WORKERS = 2
ROOM = "recovering"
# The egg-style framework's test app of each engine (tests/e2e/test_framework.py): its
# connection middleware writes "conn / TAG before" to FWAPP_TRACE and "auth" emits "welcome".
APP_DIRS = {"eventlet": APPS_DIR / "fwapp", "asyncio": APPS_DIR / "fwapp_async"}


@pytest.fixture(autouse=True)
def node_ready() -> None:
    require_node()


def _consumer(cluster: Any, ip: str, expect: int, **spec: Any) -> NodeClient:
    return _consumer_at(cluster.url, ip, expect, **spec)


def _consumer_at(url: str, ip: str, expect: int, **spec: Any) -> NodeClient:
    return NodeClient({"url": url, "localAddress": ip, "room": ROOM, "expect": expect,
                       "timeout": 60000, **spec}, script="recovery.js")


def _until(node: NodeClient, op: str) -> dict[str, Any]:
    """The next line of kind ``op`` (others are kept in node.seen)."""
    while True:
        line = node.next(timeout=30)
        if line["op"] == op:
            return line


def _send(producer: BoundClient, numbers: range) -> None:
    for n in numbers:
        assert producer.call("to_room", {"room": ROOM, "data": n}, timeout=10) is True


# Events sent only once the consumer has lost its connection: the outage happens in the middle
# of the stream whatever the machine's speed.
AFTER_OUTAGE = 20


class Rest(threading.Thread):
    """Sends ``numbers`` in the background, the last AFTER_OUTAGE of them only once
    ``outage`` is set (bounded wait)."""

    def __init__(self, producer: BoundClient, numbers: range) -> None:
        super().__init__(daemon=True)
        self.producer, self.numbers = producer, numbers
        self.outage = threading.Event()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            last = self.numbers.stop - AFTER_OUTAGE
            _send(self.producer, range(self.numbers.start, last))
            self.outage.wait(30)
            _send(self.producer, range(last, self.numbers.stop))
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_consumer_whose_worker_is_killed_misses_nothing(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient]
) -> None:
    port = free_port()
    cluster = start_cluster(workers=WORKERS, extra_args=[
        "--connection-state-recovery", "30", "--metrics-bind", f"127.0.0.1:{port}"])
    consumer_ip = ips_for_slot(1, WORKERS)[0]
    slot = expected_slot(consumer_ip, WORKERS)
    producer = connect(cluster, ips_for_slot(0, WORKERS)[0])
    assert whoami(producer)["slot"] != slot
    total, kill_after = 300, 80
    node = _consumer(cluster, consumer_ip, total, reportAt=[1])
    try:
        first = _until(node, "connect")
        assert first["recovered"] is False
        _until(node, "joined")
        victim = cluster.worker_pids()[slot]
        _send(producer, range(kill_after))
        _until(node, "got")  # an offset to come back with (queued is not received)
        # The rest is sent while the consumer's worker dies and its slot is respawned.
        rest = Rest(producer, range(kill_after, total))
        rest.start()
        os.kill(victim, signal.SIGKILL)
        gone = _until(node, "disconnect")
        rest.outage.set()
        rest.join(60)
        assert not rest.errors and not rest.is_alive()
        again = _until(node, "connect")
        done = _until(node, "done")
    finally:
        node.close()
    assert gone["count"] <= total - AFTER_OUTAGE
    assert again["recovered"] is True, node.seen
    assert again["id"] == first["id"]
    assert done["got"] == list(range(total)), node.seen[-3:]
    # Every event carried its offset: the stream entry ids, increasing.
    offsets = [tuple(map(int, o.split("-"))) for o in done["offsets"]]
    assert offsets == sorted(offsets) and len(set(offsets)) == total
    assert not [line for line in node.seen if line["op"] == "joined"][1:], \
        "a recovered socket keeps its rooms without joining again"
    # The respawned worker counts the recovery (sioctl status --json, and the metrics).
    wait_until(lambda: (cluster.slot_info(slot).get("messaging") or {})
               .get("recovery", {}).get("recovered") == 1, 10,
               what="status to show the recovery")
    page = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert sample(page, "sioctl_recovery_succeeded_total", slot) == 1
    assert sample(page, "sioctl_recovery_attempted_total", slot) == 1


def _diagnosis(node: NodeClient, cluster: Any) -> str:
    """A failed recovery's message: every line the client printed (a str, so that pytest
    does not cut it as it cuts a long list's repr) and the cluster's log."""
    lines = "\n".join(json.dumps(line) for line in node.seen)
    return f"client:\n{lines}\n--- sioctl log ---\n{cluster.log_text()}"


def _respawned(cluster: Any, slot: int, dead: int) -> int:
    """The pid of the worker that replaced ``dead`` in ``slot`` (waits for it)."""
    return int(wait_until(lambda: [pid for s, pid in cluster.worker_pids().items()
                                   if s == slot and pid != dead], 30,
                          what="the slot's worker to be respawned")[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_a_worker_killed_right_after_a_recovery_keeps_the_session(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient]
) -> None:
    """A restore takes the session record (GETDEL): the restored socket's records must be
    back in Redis before its CONNECT answer, or a worker SIGKILLed as soon as the client is
    recovered loses the session (the next reconnect was a new session)."""
    cluster = start_cluster(workers=WORKERS, extra_args=["--connection-state-recovery", "30"])
    consumer_ip = ips_for_slot(1, WORKERS)[0]
    slot = expected_slot(consumer_ip, WORKERS)
    producer = connect(cluster, ips_for_slot(0, WORKERS)[0])
    total = 60
    node = _consumer(cluster, consumer_ip, total, reportAt=[1])
    try:
        first = _until(node, "connect")
        _until(node, "joined")
        victim = cluster.worker_pids()[slot]
        _send(producer, range(20))
        # The client must hold an offset (an event) to ask for a restore at all, as in Node:
        # the producer's acks say the events were queued, not received (a busy machine once
        # killed the worker before its client had any: a new session, not this test's race).
        _until(node, "got")
        os.kill(victim, signal.SIGKILL)
        _until(node, "disconnect")
        _send(producer, range(20, 40))
        # Known before the client is back on it, so the kill follows its connect at once.
        second = _respawned(cluster, slot, victim)
        again = _until(node, "connect")
        os.kill(second, signal.SIGKILL)
        _until(node, "disconnect")
        _send(producer, range(40, total))
        last = _until(node, "connect")
        # (A new session would wait for events sent before it joined: said here instead,
        # the first recovery first, with every line the client printed and the workers' log,
        # which says why a restore gave a new session.)
        assert again["recovered"] is True and again["id"] == first["id"], \
            _diagnosis(node, cluster)
        assert last["recovered"] is True, _diagnosis(node, cluster)
        done = _until(node, "done")
    finally:
        node.close()
    assert last["id"] == first["id"]
    assert done["got"] == list(range(total)), node.seen[-3:]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_consumer_whose_worker_died_before_its_first_event_gets_a_new_session(
    start_cluster: Callable[..., Any]
) -> None:
    """As in Node, a client asks for a restore with its private id and the offset of the last
    event it got, so one that got none comes back as a new session; its new worker says why.
    (What test_a_worker_killed_right_after_a_recovery_keeps_the_session ran into once, when a
    busy machine killed the worker before its client had any of the events sent.)"""
    cluster = start_cluster(workers=WORKERS, extra_args=["--connection-state-recovery", "30"])
    consumer_ip = ips_for_slot(1, WORKERS)[0]
    node = _consumer(cluster, consumer_ip, 1)
    try:
        first = _until(node, "connect")
        _until(node, "joined")
        os.kill(cluster.worker_pids()[expected_slot(consumer_ip, WORKERS)], signal.SIGKILL)
        _until(node, "disconnect")
        again = _until(node, "connect")
    finally:
        node.close()
    assert again["recovered"] is False and again["id"] != first["id"]
    wait_until(lambda: "a new session instead of a restore: its CONNECT has a private id but "
               "no offset" in cluster.log_text(), 10, what="the log to say why")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_consumer_away_longer_than_the_window_gets_a_new_session(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient]
) -> None:
    # A 1 s window; the consumer drops its connection after its 3rd event and is back 3 s later.
    cluster = start_cluster(workers=WORKERS, extra_args=["--connection-state-recovery", "1"])
    consumer_ip = ips_for_slot(1, WORKERS)[0]
    producer = connect(cluster, ips_for_slot(0, WORKERS)[0])
    node = _consumer(cluster, consumer_ip, 6, blipAt=[3], reconnectionDelay=3000)
    try:
        first = _until(node, "connect")
        _until(node, "joined")
        _send(producer, range(3))
        _until(node, "disconnect")
        again = _until(node, "connect")
        _until(node, "joined")
        _send(producer, range(3, 6))
        done = _until(node, "done")
    finally:
        node.close()
    assert again["recovered"] is False
    assert again["id"] != first["id"]
    assert done["got"] == list(range(6))
    # The worker says why the client got a new session (its record expired with the window).
    wait_until(lambda: "a new session instead of a restore: no session record"
               in cluster.log_text(), 10, what="the log to say why there was no restore")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("transport", ["pubsub", "streams"])
def test_a_short_blip_is_recovered_on_the_same_worker(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient], transport: str
) -> None:
    """The window's other side: a transport closed without a word and back within it (with
    either Redis transport for what is not recoverable)."""
    cluster = start_cluster(workers=WORKERS, extra_args=[
        "--connection-state-recovery", "30", "--redis-transport", transport])
    consumer_ip = ips_for_slot(1, WORKERS)[0]
    producer = connect(cluster, ips_for_slot(0, WORKERS)[0])
    node = _consumer(cluster, consumer_ip, 6, blipAt=[3], reconnectionDelay=1000)
    try:
        first = _until(node, "connect")
        _until(node, "joined")
        _send(producer, range(3))
        _until(node, "disconnect")
        # Sent while the consumer is away: replayed when it comes back.
        _send(producer, range(3, 6))
        again = _until(node, "connect")
        done = _until(node, "done")
    finally:
        node.close()
    assert again["recovered"] is True and again["id"] == first["id"]
    assert done["got"] == list(range(6))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_quiet_stream_that_expired_does_not_stop_a_recovery(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient]
) -> None:
    """The recovery stream expires a window after its last event: gone, it says that nothing
    was emitted while the client was away, and the client recovers with nothing to replay."""
    cluster = start_cluster(workers=WORKERS, extra_args=["--connection-state-recovery", "1"])
    producer = connect(cluster, ips_for_slot(0, WORKERS)[0])
    # Quiet for 4 s after the 3rd event (the stream expires 3 s after it), then a 0.3 s blip.
    node = _consumer(cluster, ips_for_slot(1, WORKERS)[0], 6, blipAt=[3], blipDelay=4000,
                     reconnectionDelay=300)
    try:
        first = _until(node, "connect")
        _until(node, "joined")
        _send(producer, range(3))
        _until(node, "disconnect")
        again = _until(node, "connect")
        _send(producer, range(3, 6))
        done = _until(node, "done")
    finally:
        node.close()
    assert again["recovered"] is True and again["id"] == first["id"], node.seen
    assert done["got"] == list(range(6))
    assert [line for line in node.seen if line["op"] == "joined"] == [{"op": "joined"}]


def _framework_blip(cluster: Any, connect: Callable[..., BoundClient]
                    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A consumer of the framework app (tag R) in ROOM gets 6 events with a blip after the
    third; its first and second ``connect`` lines and its ``done`` line."""
    producer = connect(f"{cluster.url}?token=good&tag=P", ips_for_slot(0, WORKERS)[0])
    node = NodeClient({"url": f"{cluster.url}?token=good&tag=R",
                       "localAddress": ips_for_slot(1, WORKERS)[0], "room": ROOM, "expect": 6,
                       "event": "said", "blipAt": [3], "reconnectionDelay": 500,
                       "timeout": 60000}, script="recovery.js")
    try:
        first = _until(node, "connect")
        _until(node, "joined")
        for n in range(3):
            assert producer.call("to_room", (ROOM, n), timeout=10) == "sent"
        _until(node, "disconnect")
        for n in range(3, 6):
            assert producer.call("to_room", (ROOM, n), timeout=10) == "sent"
        return first, _until(node, "connect"), _until(node, "done")
    finally:
        node.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_framework_skips_the_connection_middleware_of_a_recovered_socket(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient], tmp_path: Any,
    engine: str,
) -> None:
    """io.init.connection_state_recovery.skip_middlewares (socket.io's default, True): the
    connection middleware ran when the socket first connected, not again when it comes back."""
    trace = tmp_path / "trace.txt"
    cluster = start_cluster(app=str(APP_DIRS[engine]),
                            extra_args=["--connection-state-recovery", "30"],
                            env={"FWAPP_TRACE": str(trace)})
    first, again, done = _framework_blip(cluster, connect)
    assert again["recovered"] is True and again["id"] == first["id"]
    assert done["got"] == list(range(6))
    lines = trace.read_text().splitlines()
    assert lines.count("conn / R before") == 1, lines
    assert lines.count("auth R accepted") == 1, lines


@pytest.mark.parametrize("engine", ENGINES)
def test_a_recovered_socket_keeps_the_id_its_generate_id_gave_it(
    start_cluster: Callable[..., Any], connect: Callable[..., BoundClient], engine: str,
) -> None:
    """An app whose io.generate_id draws a new id at every handshake: a recovered socket gets
    its old id back, not a new one (and takes its id's claim over)."""
    cluster = start_cluster(app=str(APP_DIRS[engine]),
                            extra_args=["--env", "randomids", "--connection-state-recovery",
                                        "30"])
    first, again, done = _framework_blip(cluster, connect)
    assert first["id"].startswith("rnd-")
    assert again["recovered"] is True and again["id"] == first["id"]
    assert done["got"] == list(range(6))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_consumer_whose_node_is_stopped_recovers_on_the_other_through_nginx(
    start_cluster: Callable[..., Any], start_nginx: Callable[..., NginxServer],
    connect: Callable[..., BoundClient],
) -> None:
    """Two nodes of 2 workers behind nginx (hash on the client address), one Redis: the
    consumer's node is stopped in the middle of the stream; the consumer comes back through
    nginx on the other node as the same socket and misses nothing."""
    nodes = [start_cluster(workers=WORKERS, extra_args=[
        *NODE_ARGS["http"], "--graceful-timeout", "2", "--connection-state-recovery", "30"])
        for _ in range(2)]
    front = Front(nodes, start_nginx("http", nodes))
    # Which node nginx sends each address to (its hash depends on the nodes' ports, new at each
    # run): a consumer address on node 0, a producer's on 1, asking until both are found.
    placed: dict[int, str] = {}
    for ip in SOURCE_IPS:
        placed.setdefault(front.where(connect(front.url, ip, ("websocket",)))[0], ip)
        if len(placed) == 2:
            break
    assert len(placed) == 2, f"nginx sent all of {SOURCE_IPS} to node {list(placed)}"
    consumer_ip = placed[0]
    producer = connect(front.url, placed[1], ("websocket",))
    total, stop_after = 300, 80
    node = _consumer_at(front.url, consumer_ip, total, reportAt=[1])
    try:
        first = _until(node, "connect")
        _until(node, "joined")
        _send(producer, range(stop_after))
        _until(node, "got")  # an offset to come back with (queued is not received)
        rest = Rest(producer, range(stop_after, total))
        rest.start()
        nodes[0].signal(signal.SIGTERM)
        gone = _until(node, "disconnect")
        rest.outage.set()
        rest.join(60)
        assert not rest.errors and not rest.is_alive()
        again = _until(node, "connect")
        done = _until(node, "done")
        assert nodes[0].wait_exit(30) is not None, "the stopped node did not exit"
    finally:
        node.close()
    assert gone["count"] <= total - AFTER_OUTAGE
    assert again["recovered"] is True and again["id"] == first["id"], node.seen
    assert done["got"] == list(range(total)), node.seen[-3:]


def test_a_session_record_is_written_only_by_the_socket_owner(redis_url: str) -> None:
    """recovery.RECORD_SET on a real Redis: a worker whose old socket is still open after the
    socket was restored elsewhere cannot overwrite the record."""
    client = redis.Redis.from_url(redis_url)
    record, owner = "test#session#p1", "test#owner#/:s1"
    try:
        args = (recovery.RECORD_SET, 2, record, owner)
        # No owner yet (a socket still connecting): written.
        assert client.eval(*args, "worker-a", "first", 60_000) == 1
        client.set(owner, "worker-a")
        assert client.eval(*args, "worker-a", "second", 60_000) == 1
        assert client.get(record) == b"second" and 0 < client.pttl(record) <= 60_000
        # Restored on worker b: a's late write is refused.
        client.set(owner, "worker-b")
        assert client.eval(*args, "worker-a", "stale", 60_000) == 0
        assert client.get(record) == b"second"
    finally:
        client.delete(record, owner)
        client.close()
