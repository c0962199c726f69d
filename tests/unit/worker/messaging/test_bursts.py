"""What the listener delivers itself in a burst (worker/messaging/bursts.py): which messages
it holds, what payload python-socketio's ``_handle_emit`` would have passed on, and the order
in which a burst's frames are kept per session."""

from __future__ import annotations

from typing import Any

from sioctl.worker.messaging.bursts import Held, held_emit

ROOMS: dict[Any, Any] = {"/": {None: {"s1": "e1"}, "s1": {"s1": "e1"}, "room": {"s1": "e1"}}}


def emit(**fields: Any) -> dict[str, Any]:
    message = {"method": "emit", "event": "msg", "data": [{"i": 1}], "namespace": "/",
               "room": "s1", "skip_sid": None, "callback": None, "host_id": "other"}
    message.update(fields)
    return message


def test_another_workers_emit_to_a_socket_or_room_here_is_held() -> None:
    assert held_emit(emit(), "me", ROOMS) == ("/", "s1", "msg", {"i": 1})
    assert held_emit(emit(room="room"), "me", ROOMS) == ("/", "room", "msg", {"i": 1})


def test_another_workers_broadcast_to_a_namespace_with_sockets_here_is_held() -> None:
    assert held_emit(emit(room=None), "me", ROOMS) == ("/", None, "msg", {"i": 1})
    assert held_emit(emit(room=None, namespace="/chat"), "me", ROOMS) is None


def test_the_payload_is_unwrapped_as_handle_emit_does() -> None:
    assert held_emit(emit(data=[1, 2]), "me", ROOMS) == ("/", "s1", "msg", (1, 2))
    assert held_emit(emit(data=[]), "me", ROOMS) == ("/", "s1", "msg", ())
    assert held_emit(emit(data=[None]), "me", ROOMS) == ("/", "s1", "msg", None)
    assert held_emit(emit(data="text"), "me", ROOMS) == ("/", "s1", "msg", "text")


def test_everything_else_goes_python_socketios_way() -> None:
    others = [
        emit(host_id="me"),                       # this worker's own emit
        emit(callback=["me", "/", 3]),            # an ack to send back
        emit(binary=True),                        # attachments to put back
        emit(room=["s1", "room"]),                # a list of rooms
        emit(room="elsewhere"),                   # nobody here
        emit(namespace="/chat"),                  # a namespace nobody joined here
        emit(event=7),                            # not an event name
        {k: v for k, v in emit().items() if k != "data"},
        {"method": "disconnect", "sid": "s1", "namespace": "/", "host_id": "other"},
        {"method": "callback", "host_id": "me", "sid": "s1", "namespace": "/", "id": 1},
    ]
    assert [held_emit(message, "me", ROOMS) for message in others] == [None] * len(others)


def test_frames_are_kept_per_session_in_order_and_taken_once() -> None:
    held = Held()
    assert not held
    held.add("e1", [("p1", b"f1")])
    held.add("e2", [("q1", b"g1")])
    held.add("e1", [("p2", b"f2"), ("p3", b"f3")])
    assert held
    assert held.take() == [("e1", ["p1", "p2", "p3"], [b"f1", b"f2", b"f3"]),
                           ("e2", ["q1"], [b"g1"])]
    assert not held and held.take() == []


def test_broadcasts_are_held_in_order_for_their_namespace_and_taken_once() -> None:
    held = Held()
    held.add_broadcast("/", [("p1", b"f1")])
    held.add_broadcast("/", [("p2", b"f2"), ("p3", b"f3")])
    assert held and not held.sessions
    assert held.take_broadcast() == ("/", [("p1", b"f1"), ("p2", b"f2"), ("p3", b"f3")])
    assert not held and held.take_broadcast() == (None, [])
