"""The publisher's outage line names the Redis server its batch went to (outbox.failed): a
closed connection's error ("Connection closed by server.") does not, and behind Sentinel the
server is the master that was lost."""

from __future__ import annotations

import logging

import pytest
from redis.connection import Connection, UnixDomainSocketConnection

from sioctl.worker.messaging.outbox import Outbox, server_of


def test_the_server_of_a_tcp_or_unix_connection() -> None:
    assert server_of(Connection(host="127.0.0.1", port=6390)) == " (at 127.0.0.1:6390)"
    assert server_of(UnixDomainSocketConnection(path="/run/r.sock")) == " (at /run/r.sock)"
    assert server_of(None) == ""


def test_an_outage_is_said_once_naming_the_server(caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(logging.getLogger("test-outbox"))
    connection = Connection(host="127.0.0.2", port=6391)
    with caplog.at_level(logging.ERROR, logger="test-outbox"):
        outbox.failed(ConnectionError("Connection closed by server."), connection)
        outbox.failed(ConnectionError("Connection refused"), None)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["Redis publisher (at 127.0.0.2:6391): Connection closed by server.; "
                     "queueing until Redis is back (0 message(s) waiting)"]
