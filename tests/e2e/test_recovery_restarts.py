"""Connection state recovery (issue 18) across planned restarts, with the official
socket.io-client@4 (tests/js/recovery.js): a HUP rolling restart and a SIGKILLed worker during
one broadcast stream, and a TTIN that moves a client's address to the new worker.

The producer is a python client of a second sioctl node on the same Redis (so the same cluster
channel and recovery stream): the restarts of the consumers' node never interrupt it, and every
event it emits is acknowledged once, so the stream it sends is exactly 0..N-1.
Each test runs on both engines.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.support.clients import BoundClient, expected_slot, ips_for_slot, wait_until
from tests.support.cluster import ENGINES, Cluster
from tests.support.node import NodeClient, require_node

WORKERS = 2
ROOM = "recovering"
CANDIDATES = [f"127.0.0.{i}" for i in range(2, 40)]
WAIT = 60.0


@pytest.fixture(autouse=True)
def node_ready() -> None:
    require_node()


class Consumers:
    """recovery.js consumers, their output lines collected in the background so a test can
    wait on all of them at once."""

    def __init__(self, url: str, ips: list[str], expect: int, **spec: Any) -> None:
        self.nodes = [NodeClient({"url": url, "localAddress": ip, "room": ROOM,
                                  "expect": expect, "timeout": 180000, **spec},
                                 script="recovery.js") for ip in ips]
        self.ips = ips
        self.lines: list[list[dict[str, Any]]] = [[] for _ in ips]
        self.changed = threading.Condition()
        self.readers = [threading.Thread(target=self._read, args=(i,), daemon=True)
                        for i in range(len(ips))]
        for reader in self.readers:
            reader.start()

    def _read(self, index: int) -> None:
        node = self.nodes[index]
        while True:
            try:
                line = node.lines.get(timeout=WAIT * 3)
            except queue.Empty:
                line = None
            with self.changed:
                self.lines[index].append(line if line is not None else {"op": "ended"})
                self.changed.notify_all()
            if line is None or line.get("op") in ("done", "error"):
                return

    def ops(self, index: int, op: str) -> list[dict[str, Any]]:
        """The lines of kind ``op`` consumer ``index`` printed so far."""
        with self.changed:
            return [line for line in self.lines[index] if line["op"] == op]

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        """Until ``predicate()`` holds (bounded); fails early on a consumer's error line."""
        deadline = time.monotonic() + WAIT
        with self.changed:
            while not predicate():
                broken = [lines[-1] for lines in self.lines
                          if lines and lines[-1]["op"] in ("error", "ended")]
                assert not broken, f"a consumer failed while waiting for {what}: {broken}"
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {what}: {self.summary()}"
                self.changed.wait(left)

    def summary(self) -> list[list[dict[str, Any]]]:
        """Every consumer's lines but the long ones' lists (for a failure message)."""
        return [[{k: v for k, v in line.items() if not isinstance(v, list)} for line in lines]
                for lines in self.lines]

    def each_has(self, op: str, count: int, which: list[int] | None = None) -> Callable[[], bool]:
        indexes = range(len(self.ips)) if which is None else which
        return lambda: all(
            sum(1 for line in self.lines[i] if line["op"] == op) >= count for i in indexes)

    def close(self) -> None:
        for node in self.nodes:
            node.close()


def _send(producer: BoundClient, numbers: range) -> None:
    for n in numbers:
        assert producer.call("to_room", {"room": ROOM, "data": n}, timeout=10) is True


class Producer(threading.Thread):
    """Sends ``parts`` in order, waiting (bounded) for ``gates[i]`` before ``parts[i + 1]``."""

    def __init__(self, producer: BoundClient, parts: list[range]) -> None:
        super().__init__(daemon=True)
        self.producer, self.parts = producer, parts
        self.gates = [threading.Event() for _ in parts[1:]]
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            for index, part in enumerate(self.parts):
                if index:
                    assert self.gates[index - 1].wait(WAIT), f"gate {index} never opened"
                _send(self.producer, part)
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)


def _producer_node(start_cluster: Callable[..., Cluster],
                   connect: Callable[..., BoundClient]) -> BoundClient:
    """A python client of a 1-worker node that emits into the same recovery stream."""
    node = start_cluster(workers=1, extra_args=["--connection-state-recovery", "30"])
    return connect(node, "127.0.0.40", ("websocket",))


def _reconnects(consumers: Consumers, index: int) -> list[dict[str, Any]]:
    return consumers.ops(index, "connect")[1:]


@pytest.mark.parametrize("engine", ENGINES)
def test_consumers_miss_nothing_over_a_hup_roll_and_a_killed_worker(
    start_cluster: Callable[..., Cluster], connect: Callable[..., BoundClient]
) -> None:
    """Six consumers (three per worker) of a 620-event broadcast to their room: one worker is
    SIGKILLed, then the cluster is rolled by SIGHUP (each old worker drains: "transport
    close"), both in the middle of the stream. Every consumer ends with every event once, in
    order, and every reconnect is a recovery of the same socket.

    The kill comes first: it came first when a worker killed within milliseconds of
    restoring a socket lost that session (its new record was queued; now it is written
    before the CONNECT answer, test_recovery.py's
    test_a_worker_killed_right_after_a_recovery_keeps_the_session) and a roll's last slot is
    restored just before the roll ends; the order is kept."""
    cluster = start_cluster(workers=WORKERS, extra_args=[
        "--connection-state-recovery", "30", "--graceful-timeout", "5"])
    producer = _producer_node(start_cluster, connect)
    ips = [*ips_for_slot(0, WORKERS, CANDIDATES)[:3], *ips_for_slot(1, WORKERS, CANDIDATES)[:3]]
    victims = [i for i, ip in enumerate(ips) if expected_slot(ip, WORKERS) == 1]
    total = 620
    consumers = Consumers(cluster.url, ips, total, reportAt=[1])
    try:
        consumers.wait(consumers.each_has("joined", 1), "every consumer to join")
        first_ids = [consumers.ops(i, "connect")[0]["id"] for i in range(len(ips))]
        _send(producer, range(150))
        # Every consumer needs an offset (an event) to ask for a restore after the kill and
        # the roll: the producer's acks say the events were queued, not received.
        consumers.wait(consumers.each_has("got", 1), "every consumer's first event")
        rest = Producer(producer, [range(150, 250), range(250, 400), range(400, total)])
        rest.start()
        os.kill(cluster.worker_pids()[1], signal.SIGKILL)
        consumers.wait(consumers.each_has("disconnect", 1, victims), "the victims to drop")
        rest.gates[0].set()
        consumers.wait(consumers.each_has("connect", 2, victims), "the victims to come back")
        cluster.wait_ready()
        old_pids = set(cluster.worker_pids().values())
        cluster.signal(signal.SIGHUP)
        consumers.wait(lambda: all(len(consumers.ops(i, "disconnect")) == (
            2 if i in victims else 1) for i in range(len(ips))),
            "every consumer to lose its worker to the roll")
        rest.gates[1].set()
        wait_until(lambda: "rolling restart done" in cluster.log_text(), WAIT,
                   what="the rolling restart")
        rest.join(WAIT)
        assert not rest.errors and not rest.is_alive(), rest.errors
        consumers.wait(consumers.each_has("done", 1), "every consumer to get every event")
        assert not set(cluster.worker_pids().values()) & old_pids, "the HUP replaced no worker"
    finally:
        consumers.close()
    for i, ip in enumerate(ips):
        done = consumers.ops(i, "done")[0]
        missing = sorted(set(range(total)) - set(done["got"]))
        assert done["got"] == list(range(total)), (ip, len(done["got"]), missing[:10])
        gone = consumers.ops(i, "disconnect")
        assert [line["reason"] for line in gone] == ["transport close"] * len(gone), gone
        # The outages happened in the middle of the stream.
        assert all(line["count"] < total for line in gone), gone
        again = _reconnects(consumers, i)
        assert len(again) == (2 if i in victims else 1), (ip, again)
        assert all(line["recovered"] is True and line["id"] == first_ids[i]
                   for line in again), (ip, again)
        assert len(consumers.ops(i, "joined")) == 1, "a recovered socket keeps its room"


def _slots_ready(count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda status: len(status["slots"]) == count and all(
        slot.get("state") == "ready" and slot.get("pid") for slot in status["slots"])


def _recovered_on(cluster: Cluster, slot: int) -> int:
    info = cluster.slot_info(slot).get("messaging") or {}
    return int(info.get("recovery", {}).get("recovered", 0))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_whose_address_moves_recovers_on_its_new_worker(
    start_cluster: Callable[..., Cluster], connect: Callable[..., BoundClient],
    run_sioctl: Callable[..., Any],
) -> None:
    """TTIN adds slot 2, which the jump hash gives some addresses of slots 0 and 1: a consumer
    of such an address that blips comes back on the new worker, recovered. ``sioctl scale 2``
    then removes slot 2 (its worker drains) in the middle of the stream: the consumer comes
    back on its old slot, recovered again, and ends with every event once, in order."""
    cluster = start_cluster(workers=WORKERS, extra_args=[
        "--connection-state-recovery", "30", "--graceful-timeout", "5"])
    moving = next(ip for ip in CANDIDATES if expected_slot(ip, 3) == 2)
    producer = _producer_node(start_cluster, connect)
    total = 200
    consumers = Consumers(cluster.url, [moving], total, blipAt=[3], reconnectionDelay=1000)
    try:
        consumers.wait(consumers.each_has("joined", 1), "the consumer to join")
        cluster.signal(signal.SIGTTIN)
        cluster.wait_for(_slots_ready(3), WAIT, what="the third worker")
        _send(producer, range(3))
        consumers.wait(consumers.each_has("disconnect", 1), "the blip")
        _send(producer, range(3, 100))
        consumers.wait(consumers.each_has("connect", 2), "the consumer back")
        wait_until(lambda: _recovered_on(cluster, 2) == 1, 10,
                   what="the new worker to count the recovery")
        rest = Producer(producer, [range(100, 150), range(150, total)])
        rest.start()
        result = run_sioctl("scale", "2", "--title", cluster.title, "--run-dir",
                            cluster.run_base)
        assert result.returncode == 0, result.stderr
        consumers.wait(consumers.each_has("disconnect", 2), "slot 2 to drain")
        rest.gates[0].set()
        rest.join(WAIT)
        assert not rest.errors and not rest.is_alive(), rest.errors
        consumers.wait(consumers.each_has("done", 1), "every event")
        wait_until(lambda: _recovered_on(cluster, expected_slot(moving, WORKERS)) == 1, 10,
                   what="the old slot's worker to count the recovery")
        shown = run_sioctl("status", "--title", cluster.title, "--run-dir", cluster.run_base)
        row = next(line.split() for line in shown.stdout.splitlines()
                   if line.split()[:1] == [str(expected_slot(moving, WORKERS))])
        assert "RECOVERED" in shown.stdout and row[-2:] == ["1/1", "0"], shown.stdout
    finally:
        consumers.close()
    done = consumers.ops(0, "done")[0]
    assert done["got"] == list(range(total)), sorted(set(range(total)) - set(done["got"]))[:10]
    first, *again = consumers.ops(0, "connect")
    assert len(again) == 2 and all(
        line["recovered"] is True and line["id"] == first["id"] for line in again), again
    assert consumers.ops(0, "disconnect")[1]["count"] < total


@pytest.mark.parametrize("engine", ENGINES)
def test_a_drained_socket_leaves_its_session_for_the_window(
    start_cluster: Callable[..., Cluster], connect: Callable[..., BoundClient], redis_url: str
) -> None:
    """A HUP roll drains the old workers: their sockets' disconnect is a recoverable one
    ("transport close"), so each writes its session record again with the window as its
    expiry (shorter than a connected socket's), and the worker sends it before it exits.
    (The consumer gets an event first: a client that has no offset yet asks for no
    recovery.)"""
    window = 30
    cluster = start_cluster(workers=WORKERS, extra_args=[
        "--connection-state-recovery", str(window), "--graceful-timeout", "5"])
    producer = _producer_node(start_cluster, connect)
    consumers = Consumers(cluster.url, [CANDIDATES[0]], 3, reconnectionDelay=5000,
                          reportAt=[1])
    client = redis.Redis.from_url(redis_url)
    try:
        consumers.wait(consumers.each_has("joined", 1), "the consumer to join")
        _send(producer, range(1))
        # The producer's ack says queued, not received: the offset must reach the client.
        consumers.wait(consumers.each_has("got", 1), "the consumer's first event")
        sid = consumers.ops(0, "connect")[0]["id"]

        def record_ttl() -> int | None:
            for key in client.scan_iter("*#session#*"):
                raw = client.get(key)
                if raw is not None and json.loads(raw).get("sid") == sid:
                    return int(client.pttl(key))
            return None

        # The record written at connect (queued: it may follow the join's answer).
        wait_until(lambda: (record_ttl() or 0) > window * 1000, 10,
                   what="the connected socket's record")
        cluster.signal(signal.SIGHUP)
        consumers.wait(consumers.each_has("disconnect", 1), "the drain")
        wait_until(lambda: 0 < (record_ttl() or 0) <= window * 1000, 20,
                   what="the drained socket's record")
        consumers.wait(consumers.each_has("connect", 2), "the consumer back")
        back = consumers.ops(0, "connect")[1]
        assert back["recovered"] is True and back["id"] == sid
        _send(producer, range(1, 3))
        consumers.wait(consumers.each_has("done", 1), "the rest")
        assert consumers.ops(0, "done")[0]["got"] == [0, 1, 2]
    finally:
        consumers.close()
        client.close()
