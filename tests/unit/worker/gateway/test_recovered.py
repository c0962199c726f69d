"""worker/gateway/recovered.py in process: what the gateway keeps in a socket's session for
connection state recovery, and what a recovered socket gets back."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sioctl.worker.gateway import recovered
from sioctl.worker.gateway.plugin import Client


class Manager:
    """The two calls recovered.py makes on sioctl's Redis manager."""

    def __init__(self) -> None:
        self.restored: set[tuple[str, str]] = set()

    def eio_sid_from_sid(self, sid: str, namespace: str) -> str | None:
        return f"eio-{sid}"

    def recovered(self, sid: str, namespace: str = "/") -> bool:
        return (namespace, sid) in self.restored


def server_with(sid: str) -> Any:
    socket = SimpleNamespace(session={})
    return SimpleNamespace(manager=Manager(), eio=SimpleNamespace(sockets={f"eio-{sid}": socket}))


def test_a_recovered_socket_gets_back_what_was_kept() -> None:
    server = server_with("s1")
    recovered.remember(server, "s1", Client("u-1", "appA", signed_app="appA", vouched=True))
    assert recovered.saved(server, "s1") is None  # not a recovered socket
    server.manager.restored.add(("/", "s1"))
    back = recovered.saved(server, "s1")
    assert back is not None
    assert (back.user_id, back.app, back.signed_app, back.vouched) == ("u-1", "appA", "appA", True)


def test_an_app_bound_by_a_request_is_not_taken_for_a_signed_handshake() -> None:
    server = server_with("s2")
    recovered.remember(server, "s2", Client("u-2", "appB"))
    server.manager.restored.add(("/", "s2"))
    back = recovered.saved(server, "s2")
    assert back is not None and back.app == "appB" and back.signed_app is None
    assert back.vouched is False


def test_nothing_kept_or_the_socket_gone() -> None:
    server = server_with("s3")
    server.manager.restored.add(("/", "s3"))
    assert recovered.saved(server, "s3") is None  # a socket of a worker without the gateway
    assert recovered.session_of(server, "other") is None
