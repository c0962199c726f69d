"""The engine-free messaging core, in process: envelopes (worker/messaging/envelope.py), loss
accounting (loss.py), forwarding decisions (routing.py), the publisher's queue (outbox.py),
the readers' state (reading.py) and the global queries' tally (tally.py). The same cases run
end to end, on real clusters and a real Redis, in test_messaging_loss.py,
test_hardening_messaging.py, test_messaging.py and test_global_queries.py."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager

from sioctl.worker.messaging import envelope, routing, tally
from sioctl.worker.messaging.base import SioctlManagerBase
from sioctl.worker.messaging.loss import LossCounter
from sioctl.worker.messaging.outbox import GUARDED_XADD, Outbox, merged
from sioctl.worker.messaging.reading import ReaderBase, StreamCursor, pubsub_batch

SHARED = "socketio"
ME, OTHER, THIRD = "me-host", "other-host", "third-host"
MINE = envelope.worker_channel(SHARED, ME)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def emit(host: str, seq: int | None = None, room: str | None = None,
         **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"method": "emit", "event": "e", "data": 1, "namespace": "/",
                            "room": room, "skip_sid": None, "callback": None,
                            "host_id": host, **extra}
    if seq is not None:
        data["seq"] = seq
    return data


def hear(counter: LossCounter, channel: str, host: str, seqs: list[int]) -> None:
    for seq in seqs:
        counter.heard(channel, emit(host, seq))


# --------------------------------------------------------------------------- envelopes


def test_stamp_adds_time_sequence_and_message_id_and_keeps_the_body() -> None:
    body = emit(OTHER)
    sent = envelope.stamp(body, 12.5, seq=7, mid="abc")
    assert sent == {**body, "ts": 12.5, "seq": 7, "mid": "abc"}
    assert "seq" not in body  # a copy
    assert envelope.stamp({**body, "ts": 3.0}, 12.5)["ts"] == 3.0  # an earlier send time stays


def test_stamp_in_place_stamps_the_callers_own_message() -> None:
    body = emit(OTHER)
    before = dict(body)
    sent = envelope.stamp(body, 12.5, seq=7, copy=False)
    assert sent is body and body == {**before, "ts": 12.5, "seq": 7}


@pytest.mark.parametrize("event, args, room, skip_sid", [
    ("msg", [{"p": 1, "t": 1.5, "s": "x"}], "sid-1", None),
    ("\u00e9v\u00e9nement \"q\"", [1, "deux", None, [True]], "salle-\u00e9", ["a", "b"]),
    ("e", [], "r", "one-sid"),
])
def test_emit_text_is_the_stamped_message_as_json_dumps_writes_it(
        event: str, args: list[Any], room: str, skip_sid: Any) -> None:
    """The direct emit's text (envelope.emit_text): the same keys, in the same order, and
    the same values as python-socketio's message stamped and encoded the general way."""
    message = {"method": "emit", "event": event, "data": args, "binary": False,
               "namespace": "/chat", "room": room, "skip_sid": skip_sid, "callback": None,
               "host_id": ME}
    text = envelope.emit_text(json.dumps, event, args, "/chat", room, skip_sid, ME,
                              1764489600.25, 42)
    assert text is not None
    expected = json.dumps(envelope.stamp(message, 1764489600.25, 42))
    assert list(json.loads(text).items()) == list(json.loads(expected).items())
    assert envelope.emit_text(lambda value: json.dumps(value).encode(), event, args, "/chat",
                              room, skip_sid, ME, 1.0, 1) is None


def test_sequencer_counts_per_channel() -> None:
    sequencer = envelope.Sequencer()
    assert [sequencer.next("a"), sequencer.next("a"), sequencer.next("b")] == [1, 2, 1]


def test_callbacks_are_not_sequenced() -> None:
    assert envelope.is_sequenced(emit(ME))
    assert not envelope.is_sequenced({"method": "callback", "host_id": OTHER})


def test_forwarded_keeps_the_sender_and_drops_sequence_and_message_id() -> None:
    data = envelope.stamp(emit(OTHER, room="sid-1"), 1.0, seq=4, mid="m")
    message = envelope.forwarded(data, (MINE, 4))
    assert message["host_id"] == OTHER and message["forwarded"] is True
    assert message["orig"] == [MINE, 4] and "seq" not in message and "mid" not in message
    # Through JSON, as on the wire, it reads back the same.
    assert envelope.origin_of(json.loads(json.dumps(message))) == (OTHER, MINE, 4)
    assert envelope.origin_of(data) is None
    assert "orig" not in envelope.forwarded(data)


def test_decode_ignores_what_is_not_an_object() -> None:
    assert envelope.decode(b'{"method": "emit"}') == {"method": "emit"}
    assert envelope.decode(b"[1]") is None
    assert envelope.decode(b"not json") is None


def test_target_and_channel_names() -> None:
    assert envelope.target_of(emit(OTHER, room="r")) == "r"
    assert envelope.target_of({"method": "disconnect", "sid": "s"}) == "s"
    assert envelope.target_of({"method": "close_room", "room": "r"}) is None
    assert envelope.worker_of(MINE, SHARED) == ME
    assert envelope.worker_of(SHARED, SHARED) is None
    assert envelope.owner_key(SHARED, "/chat", "s") == "socketio:owner:/chat:s"


# ----------------------------------------------------------------------- loss counting


def test_first_sequence_number_is_not_a_gap_and_later_gaps_are_counted() -> None:
    counter = LossCounter(ME, MINE)
    hear(counter, SHARED, OTHER, [41, 42])  # joined late: 1..40 are not this worker's loss
    assert counter.lost == 0
    gap = counter.heard(SHARED, emit(OTHER, 46))
    assert gap is not None and (gap.missing, gap.host, gap.channel, gap.total) == (
        3, OTHER, SHARED, 3)
    assert "lost 3 message(s) from worker other-ho on socketio" in gap.text


def test_series_are_per_sender_and_per_channel() -> None:
    counter = LossCounter(ME, MINE)
    hear(counter, SHARED, OTHER, [1, 2])
    hear(counter, MINE, OTHER, [1, 2])
    hear(counter, SHARED, THIRD, [10, 11])
    hear(counter, SHARED, OTHER, [5])  # 3, 4 lost on the shared channel only
    hear(counter, MINE, OTHER, [3])
    assert counter.lost == 2


def test_own_broadcast_gaps_are_not_counted() -> None:
    """A worker hears its own broadcasts back on the shared channel; its clients had them
    already, so a gap in them is nobody's loss (issue 13, item 10)."""
    counter = LossCounter(ME, MINE)
    hear(counter, SHARED, ME, [1, 2, 9])
    assert counter.lost == 0


def test_unsequenced_messages_are_ignored() -> None:
    counter = LossCounter(ME, MINE)
    hear(counter, SHARED, OTHER, [1])
    assert counter.heard(SHARED, {"method": "callback", "host_id": ME}) is None
    assert counter.heard(SHARED, {"method": "emit", "host_id": OTHER, "seq": "2"}) is None
    hear(counter, SHARED, OTHER, [2])
    assert counter.lost == 0


def test_resubscribe_gap_counts_what_was_published_meanwhile() -> None:
    """The subscription drops and comes back: the next number reveals the messages missed;
    a message heard twice or out of order is not a loss and does not move the series back."""
    counter = LossCounter(ME, MINE)
    hear(counter, MINE, OTHER, [1, 2, 3])
    hear(counter, MINE, OTHER, [8, 9])  # 4..7 published while not subscribed
    assert counter.lost == 4
    hear(counter, MINE, OTHER, [9, 5, 10])
    assert counter.lost == 4
    hear(counter, MINE, OTHER, [20])  # a second outage
    assert counter.lost == 13


def forwarded_to_me(seq: int) -> dict[str, Any]:
    """Message ``seq`` of OTHER for this worker's channel, unheard there and passed on."""
    message = routing.unheard(emit(OTHER, seq, room="sid-1"), MINE, SHARED)
    assert message is not None
    return message


def test_forwarded_before_its_gap_is_recovered() -> None:
    counter = LossCounter(ME, MINE)
    hear(counter, MINE, OTHER, [1, 2])
    counter.heard(SHARED, forwarded_to_me(3))
    counter.heard(SHARED, forwarded_to_me(4))
    hear(counter, MINE, OTHER, [6])  # 3, 4 came forwarded: only 5 is lost
    assert counter.lost == 1


def test_forwarded_after_its_gap_is_recovered() -> None:
    counter = LossCounter(ME, MINE)
    hear(counter, MINE, OTHER, [1, 2, 5])
    assert counter.lost == 2
    counter.heard(SHARED, forwarded_to_me(3))
    assert counter.lost == 1


def test_forwarded_before_the_first_number_is_not_counted_either_way() -> None:
    counter = LossCounter(ME, MINE)
    counter.heard(SHARED, forwarded_to_me(3))
    hear(counter, MINE, OTHER, [7, 8])
    assert counter.lost == 0
    counter.heard(SHARED, forwarded_to_me(6))  # before the first number heard: no gap counted
    hear(counter, MINE, OTHER, [9])
    assert counter.lost == 0


def test_forwarded_for_another_worker_changes_nothing() -> None:
    counter = LossCounter(ME, MINE)
    hear(counter, MINE, OTHER, [1])
    other_channel = envelope.worker_channel(SHARED, THIRD)
    message = routing.unheard(emit(OTHER, 2, room="sid-1"), other_channel, SHARED)
    assert message is not None
    counter.heard(SHARED, message)
    hear(counter, MINE, OTHER, [3])
    assert counter.lost == 1


def test_loss_lines_are_logged_at_most_every_five_seconds() -> None:
    clock = Clock()
    counter = LossCounter(ME, MINE, clock=clock)
    hear(counter, SHARED, OTHER, [1])
    logged = []
    for seq in (3, 5, 7):
        gap = counter.heard(SHARED, emit(OTHER, seq))
        assert gap is not None
        logged.append(gap.log)
        clock.now += 2.0
    assert logged == [True, False, False]
    clock.now += 0.1
    gap = counter.heard(SHARED, emit(OTHER, 9))
    assert gap is not None and gap.log and gap.total == 4


# --------------------------------------------------------------------------- routing


def test_route_to_owner_shared_or_nowhere() -> None:
    to_socket = emit(ME, room="sid-1")
    assert routing.route(to_socket, SHARED, local=True, owner=None) is None
    assert routing.route(to_socket, SHARED, local=False, owner=OTHER) == "socketio:w:other-host"
    assert routing.route(to_socket, SHARED, local=False, owner=None) == SHARED
    assert routing.route(emit(ME), SHARED, local=False, owner=None) == SHARED  # broadcast
    callback = {"method": "callback", "host_id": OTHER, "sid": "s", "namespace": "/", "id": 1,
                "args": []}
    assert routing.route(callback, SHARED, local=False, owner=None) == "socketio:w:other-host"


def test_owner_is_looked_up_only_for_a_socket_elsewhere() -> None:
    assert routing.needs_owner(emit(ME, room="sid-1"), local=False)
    assert not routing.needs_owner(emit(ME, room="sid-1"), local=True)
    assert not routing.needs_owner(emit(ME), local=False)
    assert not routing.needs_owner({"method": "callback", "host_id": OTHER}, local=False)


def test_streams_guard_names_the_owner_record() -> None:
    data = emit(ME, room="sid-1", namespace="/chat")
    to = envelope.worker_channel(SHARED, OTHER)
    assert routing.guard(data, SHARED, to) == ("socketio:owner:/chat:sid-1", OTHER)
    assert routing.guard(data, SHARED, SHARED) is None
    assert routing.guard({"method": "callback", "host_id": OTHER}, SHARED, to) is None


def test_unheard_on_a_worker_channel_goes_to_the_shared_channel() -> None:
    other = envelope.worker_channel(SHARED, OTHER)
    message = routing.unheard(emit(ME, 5, room="sid-1"), other, SHARED)
    assert message is not None
    assert message["forwarded"] is True and message["orig"] == [other, 5]
    assert message["host_id"] == ME  # its callbacks still come back to the sender
    assert routing.unheard(emit(ME, room="sid-1"), other, SHARED) == {
        **emit(ME, room="sid-1"), "forwarded": True}
    assert routing.unheard(emit(ME, 5), other, SHARED) is None  # a broadcast: nothing to do
    assert routing.unheard(emit(ME, 5, room="sid-1"), SHARED, SHARED) is None


def test_misdelivered_only_on_own_channel_for_a_socket_not_here() -> None:
    here = {("/", "sid-here")}

    def holds(sid: str, namespace: str) -> bool:
        return (namespace, sid) in here

    assert routing.misdelivered(emit(OTHER, 1, room="sid-gone"), MINE, MINE, holds)
    assert not routing.misdelivered(emit(OTHER, 1, room="sid-here"), MINE, MINE, holds)
    assert not routing.misdelivered(emit(OTHER, 1, room="sid-gone"), SHARED, MINE, holds)
    assert not routing.misdelivered(emit(OTHER, room="sid-gone", forwarded=True), MINE, MINE,
                                    holds)
    assert not routing.misdelivered(emit(OTHER, 1), MINE, MINE, holds)


# --------------------------------------------- the engine-free half of the manager


class Core(SioctlManagerBase, socketio.PubSubManager):
    """What an engine's manager class is made of, without its Redis I/O."""

    def __init__(self, transport: str = "pubsub") -> None:
        super().__init__(channel=SHARED)
        self._init_core(transport)


class AsyncCore(SioctlManagerBase, AsyncPubSubManager):
    """The same half under python-socketio's asyncio manager (issue 15's shell)."""

    def __init__(self, transport: str = "pubsub") -> None:
        super().__init__(channel=SHARED)
        self._init_core(transport)


@pytest.mark.parametrize("make", [Core, AsyncCore], ids=["eventlet", "asyncio"])
def test_outgoing_is_heard_back_counted_on_another_worker(make: Any) -> None:
    """A sender and a receiver of either engine's manager class: same wire, same counts."""
    sender, receiver = make(), Core()
    to = receiver.own_channel
    wire = [sender._outgoing(to, emit(sender.host_id, room="sid-1")) for _ in range(4)]
    assert [json.loads(w)["seq"] for w in wire] == [1, 2, 3, 4]
    for raw in (wire[0], wire[3]):  # 2 and 3 never arrive
        assert receiver._incoming(to, raw) is not None
    assert receiver.lost == 2 and receiver._traffic_figures()["lost"] == 2
    assert receiver.latency.figures()["count"] == 2


def test_python_socketio_messages_are_read_as_they_are() -> None:
    """python-socketio's own RedisManager sends no ts, seq or mid: nothing is counted."""
    receiver = Core()
    stock = json.dumps({"method": "emit", "event": "e", "data": 1, "namespace": "/",
                        "room": None, "skip_sid": None, "callback": None, "host_id": "stock"})
    assert receiver._incoming(SHARED, stock) == json.loads(stock)
    assert receiver._incoming(SHARED, "not json") is None
    assert receiver.lost == 0


def test_streams_messages_carry_a_unique_id_and_callbacks_no_sequence() -> None:
    core = Core("streams")
    first = json.loads(core._outgoing(SHARED, emit(core.host_id)))
    second = json.loads(core._outgoing(SHARED, emit(core.host_id)))
    assert first["mid"] != second["mid"]
    callback = json.loads(core._outgoing(SHARED, {"method": "callback", "host_id": OTHER}))
    assert "seq" not in callback


def test_unheard_is_passed_on_and_its_owner_forgotten() -> None:
    core = Core()
    other = envelope.worker_channel(SHARED, OTHER)
    core.owners.put("/", "sid-1", OTHER)
    raw = json.dumps(emit(core.host_id, 3, room="sid-1"))
    message = core._pass_on_unheard(other, raw)
    assert message is not None and message["orig"] == [other, 3]
    assert core.owners.get("/", "sid-1") == (False, None)
    assert core._pass_on_unheard(SHARED, raw) is None


def test_merged_messages_are_heard_in_order_each_counted() -> None:
    """Several messages published as one on a worker's channel (envelope.joined) are heard
    one by one, in order, each with its sequence number and latency counted; a gap between
    two merged payloads is counted once."""
    sender, receiver = Core(), Core()
    to = receiver.own_channel
    wire = [sender._outgoing(to, emit(sender.host_id, room=f"sid-{i}")) for i in range(6)]
    merged_to = envelope.merged_channel(to)
    assert receiver.listened_channels() == [SHARED, to, merged_to]
    assert receiver._heard_on(merged_to) == to and receiver._heard_on(SHARED) == SHARED
    heard = receiver._heard(receiver._heard_on(merged_to), envelope.joined(wire[:2]).encode())
    heard += receiver._heard(to, envelope.joined(wire[4:]).encode())  # 3 and 4 lost
    assert [(m["room"], m["seq"]) for m in heard] == [
        ("sid-0", 1), ("sid-1", 2), ("sid-4", 5), ("sid-5", 6)]
    assert receiver.lost == 2 and receiver.latency.figures()["count"] == 4
    assert receiver._heard(to, b"[1, 2]") == [] and receiver._heard(to, b"nope") == []


def test_merged_unheard_messages_are_each_passed_on_in_order() -> None:
    """A merged PUBLISH nobody received (the worker is gone, or runs an earlier sioctl that
    does not listen on merged channels): every message in it goes to the shared channel, in
    order, each as python-socketio's message marked forwarded with the worker channel it was
    sequenced for (which that worker sees a gap on), and their owners forgotten."""
    core = Core()
    core.publisher = Outbox(logging.getLogger("test"))
    other = envelope.worker_channel(SHARED, OTHER)
    for sid in ("sid-1", "sid-2"):
        core.owners.put("/", sid, OTHER)
    wire = [core._outgoing(other, emit(core.host_id, room=sid)) for sid in ("sid-1", "sid-2")]
    core._unheard(envelope.merged_channel(other), envelope.joined(wire))
    passed = [(args[1], json.loads(args[2])) for args in core.publisher.queue]
    assert [(channel, m["room"], m["orig"]) for channel, m in passed] == [
        (SHARED, "sid-1", [other, 1]), (SHARED, "sid-2", [other, 2])]
    assert all(m["forwarded"] and "seq" not in m for _, m in passed)
    assert core.owners.get("/", "sid-1") == (False, None)
    assert core.owners.get("/", "sid-2") == (False, None)


def test_owner_lookup_failures_are_logged_once_per_outage(caplog: Any) -> None:
    core = Core()
    with caplog.at_level(logging.INFO, logger="socketio"):
        core._owner_lookup_failed(ConnectionError("refused"))
        core._owner_lookup_failed(ConnectionError("refused"))
        assert core._owner_looked_up("/", "sid-1", OTHER.encode()) == OTHER
        assert core._owner_looked_up("/", "room", None) is None
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["cannot look up socket owners (refused); sending to every worker until "
                     "Redis answers", "socket owner lookups work again"]
    assert core.owners.get("/", "sid-1") == (True, OTHER)
    assert core.owners.get("/", "room") == (True, None)


# ------------------------------------------------------------------ global queries (tally.py)


def test_a_question_expects_every_subscriber_and_at_least_the_asker() -> None:
    assert tally.expected_workers([(b"socketio", 3)]) == 3
    assert tally.expected_workers([(b"socketio", 0)]) == 1  # not subscribed yet: itself
    for unreadable in ([], None, [()], [(b"socketio", "many")]):
        assert tally.expected_workers(unreadable) == 1


def test_a_tally_completes_with_the_expected_answers_and_reports_a_partial_one() -> None:
    tallies = tally.Tallies(ME)
    count = tallies.start("q1", 2)
    question = tally.question("fetch", "team", "/", "q1", ME, MINE)
    assert tallies.heard(question) == tally.Heard(ours=True, answer=False)  # its own, back
    assert tallies.heard({**question, "host_id": OTHER}) == tally.Heard(ours=True, answer=True)

    first = tally.reply(question, ME, ["a"], {"a": ["a", "team"]})
    assert tallies.heard(first) == tally.Heard(ours=True)
    with pytest.raises(tally.QueryTimeout) as caught:
        count.result(1.5)
    assert str(caught.value) == "1 of 2 workers answered within 1.5s"
    assert caught.value.answers == [first]

    second = tally.reply(question, OTHER, [])
    assert tallies.heard(second) == tally.Heard(ours=True, completed=count)
    assert count.result(1.5) == [first, second]
    tallies.stop("q1")
    # A late answer to a closed question is still a query message, but counts nowhere.
    assert tallies.heard(tally.reply(question, THIRD, ["c"])) == tally.Heard(ours=True)
    assert count.answers == [first, second]
    assert tallies.heard(emit(OTHER)) == tally.Heard(ours=False)


def test_answers_say_what_each_kind_did_and_go_back_to_the_asker() -> None:
    fetch = tally.question("fetch", None, "/chat", "q2", OTHER, "socketio:other")
    assert tally.answerable(fetch) == ("fetch", "/chat")
    assert tally.reply(fetch, ME, ["a", "b"], {"a": ["a", "r"]}) == {
        "method": tally.REPLY, "request_id": "q2", "host_id": ME,
        "sockets": [{"sid": "a", "rooms": ["a", "r"]}, {"sid": "b", "rooms": []}]}
    join = tally.question("join", "r", "", "q3", OTHER, "socketio:other", target="vip")
    assert join["target"] == "vip"
    assert tally.answerable(join) == ("join", "/")
    assert tally.reply(join, ME, ["a", "b"])["count"] == 2
    assert tally.answerable({**join, "kind": "explode"}) is None
    assert tally.reply_channel(join, ME) == "socketio:other"
    assert tally.reply_channel(join, OTHER) is None  # its own question: counted at once


# ------------------------------------- the publisher's and the readers' engine-free halves


def test_outbox_commands_batches_and_what_nobody_received() -> None:
    """What a publish becomes on each transport, and what a batch's answers report as unheard:
    a PUBLISH received by nobody, a guarded XADD refused."""
    unheard: list[tuple[str, Any]] = []
    pubsub = Outbox(logging.getLogger("test"), unheard=lambda c, d: unheard.append((c, d)))
    pubsub.publish("socketio:w:x", "m1")
    pubsub.publish(SHARED, "m2")
    batch = pubsub.next_batch()
    assert batch == [("publish", "socketio:w:x", "m1"), ("publish", SHARED, "m2")]
    pubsub.sent(batch, [0, 2])
    assert unheard == [("socketio:w:x", "m1")] and not pubsub.queue
    assert (pubsub.stats.published, pubsub.stats.batches, pubsub.stats.connected) == (2, 1, True)
    streams = Outbox(logging.getLogger("test"), stream_maxlen=100, stream_ttl=60,
                     unheard=lambda c, d: unheard.append((c, d)))
    streams.publish("socketio:w:x", "m3", guard=("socketio:owner:/:s", "x"))
    streams.publish(SHARED, "m4")
    batch = streams.next_batch()
    assert batch[0] == ("eval", GUARDED_XADD, 2, "socketio:w:x:stream", "socketio:owner:/:s",
                        "x", 100, "m3", 60_000)
    assert batch[1] == ("xadd", "socketio:stream", "MAXLEN", "~", 100, "*", "d", "m4")
    streams.sent(batch, [None, b"1-1"])
    assert unheard[-1] == ("socketio:w:x", "m3")


def test_a_batch_s_publishes_to_one_worker_channel_go_as_one() -> None:
    """Consecutive PUBLISHes of a batch to one channel under the merge prefix go as one
    PUBLISH of them all (a JSON array, in order); anything else between them keeps its place
    and ends the run; the shared channel, bytes and the streams' commands are never merged; a
    nobody-heard answer reports the merged payload, and every merged message is counted."""
    unheard: list[tuple[str, Any]] = []
    outbox = Outbox(logging.getLogger("test"), unheard=lambda c, d: unheard.append((c, d)))
    outbox.merge_prefix = "socketio:w:"
    x, y = "socketio:w:x", "socketio:w:y"
    for channel, data in [(x, '{"i":1}'), (x, '{"i":2}'), (SHARED, '{"i":3}'),
                          (SHARED, '{"i":4}'), (x, '{"i":5}'), (y, '{"i":6}'),
                          (y, '{"i":7}'), (y, b'{"i":8}'), (y, '{"i":9}')]:
        outbox.publish(channel, data)
    outbox.command("set", "k", 1)
    outbox.publish(y, '{"i":10}')
    outbox.publish(y, '{"i":11}')
    batch = outbox.next_batch()
    # A run goes on the worker's merged channel, which a worker of an earlier sioctl does
    # not listen to; a message alone stays on the worker's channel.
    xm, ym = envelope.merged_channel(x), envelope.merged_channel(y)
    assert batch == [("publish", xm, '[{"i":1},{"i":2}]'), ("publish", SHARED, '{"i":3}'),
                     ("publish", SHARED, '{"i":4}'), ("publish", x, '{"i":5}'),
                     ("publish", ym, '[{"i":6},{"i":7}]'), ("publish", y, b'{"i":8}'),
                     ("publish", y, '{"i":9}'), ("set", "k", 1),
                     ("publish", ym, '[{"i":10},{"i":11}]')]
    outbox.sent(batch, [0, 1, 1, 1, 1, 1, 1, True, 0])
    assert unheard == [(xm, '[{"i":1},{"i":2}]'), (ym, '[{"i":10},{"i":11}]')]
    assert not outbox.queue and outbox.stats.published == 12
    # Merged payloads stay under the byte bound: a long message goes alone.
    big = "{" + '"a":"' + "x" * 40 + '"}'
    runs = merged([("publish", x, big)] * 5 + [("publish", x, "{" + "y" * 200 + "}")],
                  "publish", "socketio:w:", most=100)
    assert [len(envelope.messages_in(args[2])) for args in runs[:-1]] == [2, 2, 1]
    assert runs[-1][2].startswith("{") and all(len(args[2]) < 100 for args in runs[:-1])
    assert merged([("spublish", x, "{}"), ("spublish", x, "{}")], "spublish",
                  "socketio:w:") == [("spublish", xm, "[{},{}]")]


def test_outbox_full_queue_drops_the_oldest_said_once_per_five_seconds(caplog: Any) -> None:
    clock = Clock()
    outbox = Outbox(logging.getLogger("test.outbox"), max_queue=2, clock=clock)
    with caplog.at_level(logging.ERROR, logger="test.outbox"):
        for i in range(5):
            outbox.command("set", "k", i)
        clock.now += 5.0
        outbox.command("set", "k", 5)
    assert [args[2] for args in outbox.queue] == [4, 5] and outbox.stats.dropped == 4
    assert sum("queue full" in r.getMessage() for r in caplog.records) == 2


def test_outbox_full_while_a_batch_is_in_flight_drops_a_queued_one() -> None:
    """The queue fills up while a batch is being sent: what is dropped is the oldest command
    not in that batch, and the batch's answer unqueues exactly the batch."""
    outbox = Outbox(logging.getLogger("test"), max_queue=3)
    for i in range(3):
        outbox.command("set", "k", i)
    batch = outbox.next_batch()  # 0, 1, 2 in flight
    outbox.command("set", "k", 3)  # nothing but the batch is queued: 3 is dropped
    assert outbox.stats.dropped == 1
    outbox.sent(batch, [True] * 3)
    assert not outbox.queue
    outbox.command("set", "k", 4)
    batch = outbox.next_batch()  # 4 in flight
    outbox.command("set", "k", 5)
    outbox.command("set", "k", 6)
    outbox.command("set", "k", 7)  # full: 5 goes, not 4
    outbox.sent(batch, [True])
    assert [args[2] for args in outbox.queue] == [6, 7] and outbox.stats.dropped == 2


def test_outbox_outage_counted_once_and_backoff_doubles_then_resets() -> None:
    outbox = Outbox(logging.getLogger("test"), clock=Clock())
    outbox.command("set", "k", 1)
    delays = [outbox.failed(ConnectionError("down")) for _ in range(7)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert outbox.stats.outages == 1 and outbox.back_after_outage()
    outbox.outage_over()
    assert outbox.stats.delayed == 1 and not outbox.back_after_outage()
    outbox.sent(outbox.next_batch(), [True])
    assert outbox.failed(ConnectionError("down again")) == 0.1 and outbox.stats.outages == 2


def test_reader_state_says_lost_once_and_back_once(caplog: Any) -> None:
    reader = ReaderBase(lambda: None, [SHARED, MINE], lambda s: None,
                        logging.getLogger("test.reader"))
    with caplog.at_level(logging.INFO, logger="test.reader"):
        assert reader._opened() is False  # the first subscription is no return
        for _ in range(3):  # three failed attempts in one outage
            reader._lost(ConnectionError("refused"))
        assert reader._opened() is True and reader.subscribed
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["Redis listener: NOT SUBSCRIBED (refused); retrying",
                     f"Redis listener: subscribed again to {SHARED}, {MINE}"]
    assert reader.resubscriptions == 1
    assert pubsub_batch({"type": "message", "channel": b"c", "data": b"d"}) == [("c", b"d")]
    assert pubsub_batch({"type": "subscribe", "channel": b"c", "data": 1}) == []
    assert pubsub_batch(None) == []


class Cursor(StreamCursor):
    def __init__(self) -> None:
        self.channels = [SHARED]
        self.logger = logging.getLogger("test.cursor")
        self._init_cursor()


def test_stream_cursor_reads_on_from_the_last_entry_and_drops_repeats(caplog: Any) -> None:
    cursor = Cursor()
    key = "socketio:stream"
    assert cursor._starts(key)
    cursor._start_at(key, [(b"5-0", {})])
    assert cursor._xread_args()["streams"] == {key: "5-0"}
    batch = cursor._entries([(key.encode(), [(b"6-0", {b"d": b"a"}), (b"6-1", {b"d": b"b"})])])
    assert batch == [(SHARED, b"a"), (SHARED, b"b")] and not cursor._starts(key)
    assert cursor._xread_args()["streams"] == {key: "6-1"}
    with caplog.at_level(logging.ERROR, logger="test.cursor"):
        cursor._check_trimmed(key, [(b"6-0", {})])  # nothing unread was trimmed
        cursor._check_trimmed(key, [(b"7-0", {})])
    assert cursor.trimmed == 1 and len(caplog.records) == 1
    assert cursor.first_time("m1") and not cursor.first_time("m1")
    assert cursor.duplicates == 1
