"""python-engineio logs a request for an unknown session under the key UnknownSessionLogMixin
turns into INFO (worker/protocol/engineio_server.py): if a release renamed the key, a planned
restart would log ERROR again without any other test noticing at once."""

from __future__ import annotations

import inspect

import engineio
import pytest

from sioctl.worker.protocol.engineio_server import UNKNOWN_SESSION_KEY


@pytest.mark.parametrize("server_class", [engineio.Server, engineio.AsyncServer])
def test_unknown_sessions_are_logged_under_the_key_we_lower(server_class: type) -> None:
    source = inspect.getsource(server_class.handle_request)
    assert f"'Invalid session {{sid}}', '{UNKNOWN_SESSION_KEY}'" in source, server_class
