"""The publisher's batches on the wire (worker/messaging/replies.py): commands packed as Redis
reads them, and the answers cut out of whatever the reads return. The bytes are checked
against a real redis-server in tests/e2e (every messaging test publishes through them)."""

from __future__ import annotations

import pytest
import redis

from sioctl.worker.messaging.replies import BatchAnswers, ReplyParser, pack


def test_commands_are_packed_as_resp_arrays_of_bulk_strings() -> None:
    assert pack([("publish", "ch", '{"é": 1}'), ("pexpire", b"k", 60000), ("x", 1.5)]) == (
        b"*3\r\n$7\r\npublish\r\n$2\r\nch\r\n$9\r\n{\"\xc3\xa9\": 1}\r\n"
        b"*3\r\n$7\r\npexpire\r\n$1\r\nk\r\n$5\r\n60000\r\n"
        b"*2\r\n$1\r\nx\r\n$3\r\n1.5\r\n")


def test_an_argument_redis_cannot_take_is_refused() -> None:
    with pytest.raises(redis.DataError):
        pack([("set", "k", None)])


ANSWERS = (b":0\r\n+OK\r\n$-1\r\n_\r\n$15\r\n1795983169283-0\r\n-ERR wrong\r\n"
           b"*3\r\n:1\r\n$1\r\na\r\n*1\r\n:2\r\n,1.5\r\n#t\r\n%1\r\n+k\r\n:3\r\n")


@pytest.mark.parametrize("step", [1, 2, 5, 16, len(ANSWERS)])
def test_answers_come_out_in_order_however_the_bytes_are_cut(step: int) -> None:
    parser = ReplyParser()
    got = []
    for at in range(0, len(ANSWERS), step):
        got += parser.feed(ANSWERS[at:at + step])
    error = got.pop(5)
    assert isinstance(error, redis.ResponseError) and str(error) == "ERR wrong"
    assert got == [0, b"OK", None, None, b"1795983169283-0", [1, b"a", [2]], 1.5, True,
                   [b"k", 3]]


def test_a_batch_is_answered_when_every_command_is() -> None:
    answers = BatchAnswers(3)
    assert answers.feed(b":1\r\n:0") is False
    assert answers.feed(b"\r\n") is False
    assert answers.feed(b"$-1\r\n") is True
    assert answers.values == [1, 0, None]


def test_a_closed_or_out_of_step_connection_fails_the_batch() -> None:
    with pytest.raises(redis.ConnectionError, match="closed"):
        BatchAnswers(1).feed(b"")
    with pytest.raises(redis.ConnectionError, match="more than"):
        BatchAnswers(1).feed(b":1\r\n:2\r\n")
