"""The SIGUSR2 memory dump's per-session object counts (worker/memory.py): the worker serves
with subclasses of the libraries' classes, which must count under the library's name."""

from __future__ import annotations

import collections

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from sioctl.worker import memory
from sioctl.worker.aio.ws_protocol import lean_http_protocol, lean_websocket_protocol
from sioctl.worker.protocol.eio3 import Eio3Session
from sioctl.worker.protocol.engineio_rules import ConformantSocket


def test_lean_uvicorn_protocols_count_under_uvicorns_names() -> None:
    counts = collections.Counter({lean_websocket_protocol(WebSocketsSansIOProtocol): 3,
                                  lean_http_protocol(HttpToolsProtocol): 2, dict: 7})
    sessions = memory.session_object_counts(counts)
    assert sessions["WebSocketsSansIOProtocol"] == 3
    assert sessions["HttpToolsProtocol"] == 2
    assert set(sessions) == set(memory.SESSION_TYPES)


def test_a_subclass_counts_once_under_its_nearest_listed_class() -> None:
    counts = collections.Counter({ConformantSocket: 4, Eio3Session: 1})
    sessions = memory.session_object_counts(counts)
    assert (sessions["ConformantSocket"], sessions["Eio3Session"]) == (4, 1)


def test_type_names_add_up_classes_of_one_name() -> None:
    first = type("Twin", (), {})
    second = type("Twin", (), {})
    assert memory.by_name(collections.Counter({first: 2, second: 5}))["Twin"] == 7
