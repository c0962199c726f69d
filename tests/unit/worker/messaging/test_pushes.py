"""The subscribed connection's own reading (worker/messaging/pushes.py): the pushes cut out of
whatever the reads return, and when a quiet connection gets a PING or is given up."""

from __future__ import annotations

import pytest

from sioctl.worker.messaging.pushes import Liveness, PushError, PushParser


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def push(*items: bytes, resp3: bool = True) -> bytes:
    return (b">" if resp3 else b"*") + b"%d\r\n" % len(items) + b"".join(map(bulk, items))


WIRE = (
    b">3\r\n$9\r\nsubscribe\r\n$8\r\nsocketio\r\n:1\r\n"
    + push(b"message", b"socketio", b'{"method": "emit"}')
    + push(b"message", b"socketio:w:abc", b"", resp3=False)
    + b"+PONG\r\n"
    + push(b"pong", b"", resp3=False)
    + push(b"pmessage", b"socketio*", b"socketio:x", b"line\r\nbreak")
    + push(b"message", b"big", b"x" * 70_000)
)
EXPECTED = [("socketio", b'{"method": "emit"}'), ("socketio:w:abc", b""),
            ("socketio:x", b"line\r\nbreak"), ("big", b"x" * 70_000)]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 4096, len(WIRE)])
def test_every_message_comes_out_whole_and_in_order_however_the_bytes_are_cut(step: int
                                                                               ) -> None:
    parser = PushParser()
    got = []
    for at in range(0, len(WIRE), step):
        got += parser.feed(WIRE[at:at + step])
    assert got == EXPECTED
    assert parser.subscribed == 1
    assert parser.pongs == 2


def test_a_message_waits_until_its_last_byte_is_there() -> None:
    parser = PushParser()
    frame = push(b"message", b"c", b"payload")
    assert parser.feed(frame[:-1]) == []
    assert parser.feed(frame[-1:] + frame) == [("c", b"payload"), ("c", b"payload")]


def test_an_error_or_a_stray_reply_drops_the_connection() -> None:
    with pytest.raises(PushError, match="NOPERM"):
        PushParser().feed(b"-NOPERM this user has no permissions\r\n")
    with pytest.raises(ConnectionError):
        PushParser().feed(b"%1\r\n+a\r\n+b\r\n")


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_a_quiet_connection_gets_a_ping_and_is_dropped_if_it_stays_silent() -> None:
    clock = Clock()
    liveness = Liveness(clock, every=10, wait=5)
    clock.now += 9
    assert liveness.quiet() is False
    clock.now += 1
    assert liveness.quiet() is True   # PING now
    clock.now += 4
    assert liveness.quiet() is False  # waiting for its answer
    clock.now += 1
    with pytest.raises(ConnectionError, match="no answer"):
        liveness.quiet()


def test_any_bytes_prove_the_connection_alive() -> None:
    clock = Clock()
    liveness = Liveness(clock, every=10, wait=5)
    clock.now += 10
    assert liveness.quiet() is True
    clock.now += 4
    liveness.heard()
    clock.now += 9
    assert liveness.quiet() is False
    clock.now += 1
    assert liveness.quiet() is True
