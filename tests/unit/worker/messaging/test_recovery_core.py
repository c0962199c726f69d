"""Connection state recovery's engine-free core (worker/messaging/recovery.py), in process: the
offsets on events, who a stored event reaches, the session record, what a restore takes from the
stream, and what the reader leaves out while a socket is restored. End to end:
tests/e2e/test_recovery.py."""

from __future__ import annotations

import json
from typing import Any

from sioctl.worker.messaging import recovery
from sioctl.worker.messaging.recovery import Restore, SessionRecord, Sessions


def _emit(data: list[Any], room: Any = None, skip: Any = None, namespace: str = "/",
          mid: str | None = None, **extra: Any) -> dict[str, Any]:
    message = {"method": "emit", "event": "news", "data": data, "binary": False,
               "namespace": namespace, "room": room, "skip_sid": skip, "callback": None,
               "host_id": "h"}
    if mid is not None:
        message["mid"] = mid
    return {**message, **extra}


def test_only_emits_without_an_ack_carry_an_offset() -> None:
    assert recovery.eligible(_emit([1]))
    assert not recovery.eligible(_emit([1], callback=["sid", "/", 1]))
    assert not recovery.eligible({"method": "enter_room", "sid": "s", "room": "r"})


def test_the_offset_is_the_last_argument() -> None:
    assert recovery.with_offset(_emit([1, "two"]), "5-0")["data"] == [1, "two", "5-0"]
    # emit(event) without data sends no argument: the offset is the only one.
    assert recovery.with_offset(_emit([None]), "5-0")["data"] == ["5-0"]
    # Binary: the argument list with placeholders comes first, the attachments after.
    binary = _emit([[{"_placeholder": True, "num": 0}], "QUJD"], binary=True)
    assert recovery.with_offset(binary, "5-1")["data"] == [
        [{"_placeholder": True, "num": 0}, "5-1"], "QUJD"]
    # The stored message is left as it was.
    message = _emit([1])
    recovery.with_offset(message, "5-0")
    assert message["data"] == [1]


def test_an_event_reaches_a_session_as_python_socketio_would_have_delivered_it() -> None:
    rooms = ["a"]
    assert recovery.reaches(_emit([1]), "/", "s1", rooms)
    assert recovery.reaches(_emit([1], room="a"), "/", "s1", rooms)
    assert recovery.reaches(_emit([1], room="s1"), "/", "s1", rooms)
    assert recovery.reaches(_emit([1], room=["b", "a"]), "/", "s1", rooms)
    assert not recovery.reaches(_emit([1], room="b"), "/", "s1", rooms)
    assert not recovery.reaches(_emit([1], namespace="/chat"), "/", "s1", rooms)
    assert not recovery.reaches(_emit([1], skip="s1"), "/", "s1", rooms)
    assert not recovery.reaches(_emit([1], skip=["x", "s1"]), "/", "s1", rooms)


def test_a_session_record_round_trips_and_refuses_junk() -> None:
    record = SessionRecord("sid1", "pid1", "/chat", ["a", "b"], {"user": 7})
    assert SessionRecord.loads(record.dumps().encode()) == record
    # Data JSON cannot hold is left out rather than failing the disconnect.
    unjsonable = SessionRecord("sid1", "pid1", "/", [], {"when": object()})
    assert SessionRecord.loads(unjsonable.dumps()) == SessionRecord("sid1", "pid1", "/", [], {})
    for junk in (None, b"", b"[]", b"{", json.dumps({"sid": 1, "pid": "p", "nsp": "/"})):
        assert SessionRecord.loads(junk) is None


def test_the_connect_auth_asks_for_a_restore_with_both_ids() -> None:
    assert recovery.recovery_auth({"pid": "p", "offset": "1-0", "token": "t"}) == ("p", "1-0")
    for auth in (None, "x", {"pid": "p"}, {"offset": "1-0"}, {"pid": 1, "offset": "1-0"},
                 {"pid": "", "offset": "1-0"}):
        assert recovery.recovery_auth(auth) is None
    assert recovery.valid_offset("1764435000000-12")
    for bad in ("", "1", "a-1", "1-b", "-", "1-0" + "0" * 50):
        assert not recovery.valid_offset(bad)


def test_a_restore_takes_what_reached_the_session_once_each_in_order() -> None:
    restore = Restore(SessionRecord("s1", "p1", "/", ["a"]), "1-0", read_to="1-0")
    stored = [
        (b"2-0", {b"d": json.dumps(_emit([1], room="a", mid="m1"))}),
        (b"3-0", {b"d": json.dumps(_emit([2], room="b", mid="m2"))}),   # another room
        (b"4-0", {b"d": json.dumps(_emit([3], mid="m3"))}),
        (b"5-0", {b"d": json.dumps(_emit([3], mid="m3"))}),             # a batch sent twice
        (b"6-0", {b"d": b"not json"}),
    ]
    restore.take(stored, lambda raw: json.loads(raw) if raw and raw != b"not json" else None)
    assert [(offset, m["data"]) for offset, m in restore.missed] == [("2-0", [1]), ("4-0", [3])]
    assert restore.read_to == "6-0"


def test_the_reader_leaves_out_sockets_being_restored_and_replayed_past_an_entry() -> None:
    sessions = Sessions(30)
    sessions.catching_up.add(("/", "s1"))
    sessions.replayed_to[("/", "s2")] = "10-0"
    sessions.replayed_to[("/chat", "s3")] = "10-0"
    assert sorted(sessions.skipped("/", "9-5")) == ["s1", "s2"]
    assert sorted(sessions.skipped("/", "10-0")) == ["s1", "s2"]
    # Past the replay, the socket gets entries again and the mark is gone.
    assert sessions.skipped("/", "10-1") == ["s1"]
    assert sessions.replayed_to == {}


def test_stream_ids_compare_as_numbers() -> None:
    assert recovery.older_or_same("9-0", "10-0")
    assert recovery.older_or_same("10-2", "10-2")
    assert not recovery.older_or_same("10-10", "10-9")
