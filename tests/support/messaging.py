"""Helpers of the messaging tests (tests/e2e/test_messaging*.py, test_hardening_messaging.py):
the app they serve, a redis-server of a test's own (the ``own_redis`` fixture of
tests/e2e/conftest.py), clients on each slot, and tagged, numbered messages counted on arrival.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from sioctl.cluster.redis_server import RedisServer
from sioctl.worker.messaging import envelope
from tests.support.clients import BoundClient, free_port, ips_for_slot, wait_until, whoami

WORKERS = 2
# Enough 127.0.0.x addresses to find two of each slot.
CANDIDATE_IPS = [f"127.0.0.{i}" for i in range(2, 40)]
# How long a message that should arrive may take.
DELIVERY_TIMEOUT = 10.0


class OwnRedis:
    """A redis-server of the test's own on a fixed 127.0.0.1 port; can be stopped and started
    again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # A port of this test process's own block (tests.support.ports): while the server is
        # stopped, no other xdist worker or ephemeral bind can take it before it comes back.
        self.server: RedisServer | None = RedisServer(
            str(directory), unix_socket=False, port=free_port()
        )
        self.server.start()
        self.port = self.server.port
        self.url = self.server.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def start(self) -> None:
        assert self.server is None
        server = RedisServer(str(self.directory), unix_socket=False, port=self.port)
        server.start()
        self.server = server

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)


class Inbox:
    """Counts the 'msg' events a client receives: {tag: Counter(i)}. Make it before asking for
    the messages: the client drops events that arrive while it has no handler for them."""

    def __init__(self, client: BoundClient) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, collections.Counter[int]] = collections.defaultdict(
            collections.Counter
        )
        client.on("msg", self._put)

    def _put(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.counts[data["tag"]][data["i"]] += 1

    def of(self, tag: str) -> collections.Counter[int]:
        with self.lock:
            return collections.Counter(self.counts[tag])

    def total(self, tag: str) -> int:
        return sum(self.of(tag).values())

    def wait(self, tag: str, n: int, timeout: float = DELIVERY_TIMEOUT) -> collections.Counter[int]:
        """Wait until ``n`` distinct messages of ``tag`` arrived; returns their counts."""
        try:
            wait_until(lambda: len(self.of(tag)) >= n, timeout,
                       what=f"{n} messages tagged {tag}")
        except AssertionError as exc:
            # How many did arrive tells a slow path from a lost message.
            raise AssertionError(f"{exc} ({len(self.of(tag))} arrived)") from None
        return self.of(tag)


def new_tag(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def clients_on_slots(
    connect: Callable[..., BoundClient], cluster: Any, per_slot: int = 1
) -> dict[int, list[tuple[BoundClient, dict[str, Any]]]]:
    """``per_slot`` websocket clients on each slot, with their whoami answers."""
    found: dict[int, list[tuple[BoundClient, dict[str, Any]]]] = {}
    for slot in range(WORKERS):
        found[slot] = []
        for ip in ips_for_slot(slot, WORKERS, CANDIDATE_IPS)[:per_slot]:
            client = connect(cluster.url_of(slot), ip, ("websocket",))
            info = whoami(client)
            assert info["slot"] == slot, info
            assert info["host_id"], "the worker does not run sioctl's Redis manager"
            found[slot].append((client, info))
    return found


def wait_for_owner_records(redis_url: str, infos: list[dict[str, Any]],
                           channel: str = "socketio") -> None:
    """Wait until Redis holds the owner record of each socket of ``infos`` (whoami answers,
    default namespace): a worker writes it through its publisher after the connect, and a
    sender that looks a socket up before that remembers "no owner" for a while
    (``OwnerCache``) and sends on the shared channel, as it should; a test that asserts the
    owner's channel waits for the records first."""
    wanted = {envelope.owner_key(channel, "/", info["sid"]): info["host_id"] for info in infos}
    client = redis.Redis.from_url(redis_url)

    def recorded() -> bool:
        try:
            return all((client.get(key) or b"").decode() == host for key, host in wanted.items())
        except redis.RedisError:
            return False

    try:
        wait_until(recorded, DELIVERY_TIMEOUT, what="the sockets' owner records")
    finally:
        client.close()


def barrier(sender: BoundClient, receiver: BoundClient, to: str) -> str:
    """Send one more message on the same path and wait for it: whatever was queued before it
    on the sender's worker has gone through Redis by then. Returns the barrier's tag (a
    second subscriber, such as a test's monitor, reads it on its own time: wait for it there
    too before looking at what that subscriber saw)."""
    inbox = inbox_for(receiver)
    tag = new_tag("barrier")
    sender.call("send_to", {"to": to, "n": 1, "tag": tag}, timeout=DELIVERY_TIMEOUT)
    inbox.wait(tag, 1)
    return tag


def stats_once_sent(client: BoundClient) -> dict[str, Any]:
    """The worker's ``manager_stats`` once its publisher's queue is empty.

    A batch stays queued until Redis has answered it, and a subscriber (a barrier's receiver)
    can have a message before the publishing worker has read Redis's answer to it: a snapshot
    taken right after a barrier can count that batch as queued. What a test asserts of the
    queue is that it empties; ``dropped`` and the rest are read in the same snapshot."""
    return wait_until(lambda: (stats := client.call("manager_stats"))["queued"] == 0 and stats,
                      DELIVERY_TIMEOUT, what="the publisher's queue to empty")


def inbox_for(client: BoundClient) -> Inbox:
    """The client's one Inbox (made on first use)."""
    inbox = getattr(client, "_test_inbox", None)
    if inbox is None:
        inbox = Inbox(client)
        client._test_inbox = inbox
    return inbox


class Sender:
    """A test thread that asks ``client``'s worker to emit one message to ``to`` (None: a
    broadcast to every client) every ``interval`` seconds (fire and forget), recording when
    each one was sent."""

    def __init__(self, client: BoundClient, to: str | None, tag: str,
                 interval: float = 0.02) -> None:
        self.client = client
        self.to = to
        self.tag = tag
        self.interval = interval
        self.sent: list[tuple[int, float]] = []
        self.stopped = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sender:
        self.thread.start()
        return self

    def _run(self) -> None:
        i = 0
        while not self.stopped.is_set():
            try:
                self.client.emit("send_to", {"to": self.to, "n": 1, "first": i, "tag": self.tag})
            except Exception as exc:  # a client that is not connected cannot send
                self.errors.append(repr(exc))
            else:
                self.sent.append((i, time.monotonic()))
                i += 1
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)

    def sent_after(self, moment: float) -> set[int]:
        return {i for i, at in self.sent if at > moment}


class Arrivals:
    """The sequence numbers of 'msg' events of one tag, in the order they arrived, and the
    other tags seen (the barriers')."""

    def __init__(self, client: BoundClient, tag: str) -> None:
        self.tag = tag
        self.lock = threading.Lock()
        self.order: list[int] = []
        self.others: set[str] = set()
        client.handle_in_order()  # the order the worker sent them in, not the threads' order
        client.on("msg", self._put)  # the client's one 'msg' handler: no Inbox besides

    def _put(self, data: dict[str, Any]) -> None:
        with self.lock:
            if data.get("tag") == self.tag:
                self.order.append(int(data["i"]))
            else:
                self.others.add(str(data.get("tag")))

    def seen(self) -> list[int]:
        with self.lock:
            return list(self.order)

    def heard(self, tag: str) -> bool:
        with self.lock:
            return tag in self.others
