"""The listener delivers what Redis sent it a burst at a time (worker/messaging/bursts.py):
another worker's emits to a socket here are written to it per burst, everything else in the
burst the way python-socketio delivers it. On both engines, against a real Redis and real
workers: a socket gets every message exactly once and in the order its sender emitted them,
whichever way each went (its own worker's channel, a room, a broadcast), and a socket that
disconnects while messages for it are on their way costs the others nothing."""

from __future__ import annotations

import threading
from typing import Any

from tests.support.clients import wait_until
from tests.support.messaging import DELIVERY_TIMEOUT, OwnRedis, clients_on_slots, new_tag


class Arrivals:
    """The message numbers of one tag, in the order the client got them."""

    def __init__(self, client: Any, tag: str) -> None:
        client.handle_in_order()  # handlers run as the messages arrive, not in threads
        self.tag = tag
        self.lock = threading.Lock()
        self.numbers: list[int] = []
        client.on("msg", self._put)

    def _put(self, data: dict[str, Any]) -> None:
        if data.get("tag") == self.tag:
            with self.lock:
                self.numbers.append(int(data["i"]))

    def seen(self) -> list[int]:
        with self.lock:
            return list(self.numbers)

    def wait(self, n: int, timeout: float = DELIVERY_TIMEOUT) -> list[int]:
        wait_until(lambda: len(self.seen()) >= n, timeout,
                   what=f"{n} messages tagged {self.tag} ({len(self.seen())} arrived)")
        return self.seen()


def test_targeted_room_and_broadcast_emits_keep_their_order(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster, per_slot=2)
    (a, _), _ = slots[0]
    (b, wb), (b2, wb2) = slots[1]
    room = new_tag("room")
    assert b.call("join", room)
    n = 600
    tag, tag2 = new_tag("mixed"), new_tag("mixed2")
    arrivals, arrivals2 = Arrivals(b, tag), Arrivals(b2, tag2)
    # Two orders at once from one worker: the receiving worker hears them interleaved, in
    # bursts holding emits for both sockets.
    done = []
    other = threading.Thread(target=lambda: done.append(a.call(
        "send_mixed", {"to": wb2["sid"], "room": new_tag("empty"), "n": n, "tag": tag2},
        timeout=DELIVERY_TIMEOUT)))
    other.start()
    assert a.call("send_mixed", {"to": wb["sid"], "room": room, "n": n, "tag": tag},
                  timeout=DELIVERY_TIMEOUT) == n
    other.join(DELIVERY_TIMEOUT)
    assert done == [n]
    assert arrivals.wait(n) == list(range(n))
    # b2 is in no room: it gets what was sent to it and the broadcasts, in order.
    expected2 = [i for i in range(n) if i % 7 != 3 or i % 11 == 5]
    assert arrivals2.wait(len(expected2)) == expected2


def test_broadcasts_heard_in_bursts_reach_every_socket_once_and_in_order(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    """Another worker's broadcasts that Redis hands over together are written to each socket
    here joined (.bursts): every socket, on both workers, gets each broadcast once, in order,
    and a socket that joins a room meanwhile still gets the room emits between them."""
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster, per_slot=2)
    (a, _), (a2, _) = slots[0]
    (b, wb), (b2, _) = slots[1]
    n = 600
    tag = new_tag("everyone")
    everyone = [Arrivals(client, tag) for client in (a, a2, b, b2)]
    assert a.call("send_to", {"to": None, "n": n, "tag": tag}, timeout=DELIVERY_TIMEOUT) == n
    for arrivals in everyone:
        assert arrivals.wait(n) == list(range(n))
    # Broadcasts, then an emit to one socket's room, then broadcasts, in one go: the joined
    # writes end where the room emit comes, and b still gets the three in their order.
    room, tag2 = new_tag("room"), new_tag("mixed")
    assert b.call("join", room)
    mixed = [Arrivals(client, tag2) for client in (a2, b, b2)]
    assert a.call("send_mixed", {"to": room, "room": room, "n": n, "tag": tag2},
                  timeout=DELIVERY_TIMEOUT) == n
    assert mixed[1].wait(n) == list(range(n))
    broadcasts = [i for i in range(n) if i % 11 == 5]
    assert mixed[0].wait(len(broadcasts)) == broadcasts
    assert mixed[2].wait(len(broadcasts)) == broadcasts
    assert b.call("whoami")["sid"] == wb["sid"]


def test_a_socket_leaving_during_a_burst_costs_the_others_nothing(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster, per_slot=2)
    (a, _), _ = slots[0]
    (b, wb), (b2, wb2) = slots[1]
    n = 600
    tag, tag_gone = new_tag("stays"), new_tag("leaves")
    arrivals = Arrivals(b, tag)
    sent = []
    leaving = threading.Thread(target=lambda: sent.append(a.call(
        "send_mixed", {"to": wb2["sid"], "room": new_tag("empty"), "n": n, "tag": tag_gone},
        timeout=DELIVERY_TIMEOUT)))
    leaving.start()
    b2.disconnect()
    assert a.call("send_mixed", {"to": wb["sid"], "room": new_tag("empty"), "n": n,
                                 "tag": tag}, timeout=DELIVERY_TIMEOUT) == n
    leaving.join(DELIVERY_TIMEOUT)
    assert sent == [n]
    # Emits to an empty room reach nobody; the rest, in order.
    expected = [i for i in range(n) if i % 7 != 3 or i % 11 == 5]
    assert arrivals.wait(len(expected)) == expected
    assert b.call("whoami")["sid"] == wb["sid"]


def test_a_client_slow_to_read_gets_everything_in_order(
    own_redis: OwnRedis, start_nodes: Any, connect: Any
) -> None:
    """The receiver stops reading for a while (its first handler waits): the worker's writes
    to it back up past the socket's buffers, what comes meanwhile is queued behind them, and
    still arrives complete and in order once it reads again. The receiving worker is held
    meanwhile too (``block``), so that it then reads what Redis kept for it in large bursts:
    their frames are queued together."""
    cluster = start_nodes(own_redis.url)
    slots = clients_on_slots(connect, cluster, per_slot=2)
    (a, _), _ = slots[0]
    (b, wb), (b2, _) = slots[1]
    n = 400
    tag = new_tag("slow")
    arrivals = Arrivals(b, tag)
    gate = threading.Event()
    first = arrivals._put

    def held_up(data: dict[str, Any]) -> None:
        gate.wait(DELIVERY_TIMEOUT)  # the client's reading thread: nothing is read meanwhile
        first(data)

    b.on("msg", held_up)
    try:
        b2.emit("block", 2.0)  # not waited for: the worker answers nothing while held
        # 50 kB each: 20 MB in all, beyond what the kernel's buffers take.
        assert a.call("send_mixed", {"to": wb["sid"], "room": new_tag("empty"), "n": n,
                                     "tag": tag, "pad": 50_000},
                      timeout=DELIVERY_TIMEOUT) == n
    finally:
        gate.set()
    expected = [i for i in range(n) if i % 7 != 3 or i % 11 == 5]
    # 17 MB to one client through a worker that was held: on a loaded machine (the whole
    # suite on 2 cores) they all arrived, in order, but the first only after more than 10 s.
    assert arrivals.wait(len(expected), timeout=4 * DELIVERY_TIMEOUT) == expected
