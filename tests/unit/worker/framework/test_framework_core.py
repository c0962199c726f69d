"""The framework's engine-free core, in process: the onion's rules (run by both shells, the
sync ``run_chain`` with plain middleware and the async ``run_chain_async`` with ``async def``
middleware: one set of cases, so the shells cannot drift apart), the refusal message, the
dispatch decision, the id and server-option rules. The same rules run end to end on eventlet
in test_framework.py and on asyncio in test_framework_async.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from sioctl.worker.errors import BootError
from sioctl.worker.framework.aio import run_chain_async
from sioctl.worker.framework.config import AppConfig, NamespaceConfig
from sioctl.worker.framework.context import Context, SocketCore
from sioctl.worker.framework.controller import ControllerTree
from sioctl.worker.framework.core import checked_id, server_options
from sioctl.worker.framework.middleware import run_chain
from sioctl.worker.framework.onion import NextNotCalled, refusal_message
from sioctl.worker.framework.plugins import Plugin
from sioctl.worker.framework.routing import IoRouter, handler_for, plugin_routes

# ------------------------------------------------------------------------------- the onion
# A layer is described once, as (name, what it does): "next" calls next() and records its
# after-half, "stop" returns without next(), "twice" calls next() twice, "catch" calls next()
# inside try/except and records what it caught, "raise" raises before next().


class SyncShell:
    """Plain middleware through ``middleware.run_chain``."""

    name = "sync"

    @staticmethod
    def layer(name: str, kind: str, trace: list[str]) -> Callable[..., Any]:
        def middleware(ctx: Any, next_: Callable[[], Any]) -> None:
            trace.append(f"{name} before")
            if kind == "raise":
                raise ValueError(f"{name} says no")
            if kind == "stop":
                return
            if kind == "catch":
                try:
                    next_()
                except ValueError as exc:
                    trace.append(f"{name} caught {exc}")
                return
            next_()
            if kind == "twice":
                next_()
            trace.append(f"{name} after")

        return middleware

    @staticmethod
    def run(layers: list[tuple[str, Any]], innermost: Callable[[], None]) -> None:
        run_chain(layers, None, innermost)  # type: ignore[arg-type]


class AsyncShell:
    """``async def`` middleware awaiting ``next()`` through ``aio.run_chain_async``."""

    name = "async"

    @staticmethod
    def layer(name: str, kind: str, trace: list[str]) -> Callable[..., Any]:
        async def middleware(ctx: Any, next_: Callable[[], Any]) -> None:
            trace.append(f"{name} before")
            await asyncio.sleep(0)  # a real suspension between the halves
            if kind == "raise":
                raise ValueError(f"{name} says no")
            if kind == "stop":
                return
            if kind == "catch":
                try:
                    await next_()
                except ValueError as exc:
                    trace.append(f"{name} caught {exc}")
                return
            await next_()
            if kind == "twice":
                await next_()
            trace.append(f"{name} after")

        return middleware

    @staticmethod
    def run(layers: list[tuple[str, Any]], innermost: Callable[[], None]) -> None:
        asyncio.run(run_chain_async(layers, None, innermost))


SHELLS = [SyncShell, AsyncShell]


def chain(shell: Any, kinds: list[tuple[str, str]], trace: list[str]) -> list[tuple[str, Any]]:
    return [(name, shell.layer(name, kind, trace)) for name, kind in kinds]


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s.name)
def test_layers_run_in_order_and_unwind_in_reverse(shell: Any) -> None:
    trace: list[str] = []
    layers = chain(shell, [("a", "next"), ("b", "next"), ("c", "next")], trace)
    shell.run(layers, lambda: trace.append("core"))
    assert trace == ["a before", "b before", "c before", "core", "c after", "b after", "a after"]


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s.name)
def test_an_empty_chain_runs_the_innermost_step(shell: Any) -> None:
    trace: list[str] = []
    shell.run([], lambda: trace.append("core"))
    assert trace == ["core"]


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s.name)
def test_a_layer_without_next_stops_the_chain_and_is_named(shell: Any) -> None:
    trace: list[str] = []
    layers = chain(shell, [("a", "next"), ("b", "stop"), ("c", "next")], trace)
    with pytest.raises(NextNotCalled) as caught:
        shell.run(layers, lambda: trace.append("core"))
    assert caught.value.name == "b"
    assert str(caught.value) == "middleware 'b' returned without calling next()"
    # Nothing inside b ran, and a's after-half did not run either (the refusal unwound it).
    assert trace == ["a before", "b before"]


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s.name)
def test_next_twice_is_an_error_naming_the_layer(shell: Any) -> None:
    trace: list[str] = []
    layers = chain(shell, [("a", "twice"), ("b", "next")], trace)
    with pytest.raises(RuntimeError, match="middleware 'a' called next\\(\\) twice"):
        shell.run(layers, lambda: trace.append("core"))
    assert trace.count("core") == 1


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s.name)
def test_an_exception_unwinds_the_outer_layers_unless_one_catches_it(shell: Any) -> None:
    trace: list[str] = []
    layers = chain(shell, [("a", "next"), ("b", "raise")], trace)
    with pytest.raises(ValueError, match="b says no"):
        shell.run(layers, lambda: trace.append("core"))
    assert trace == ["a before", "b before"]

    trace.clear()
    layers = chain(shell, [("a", "catch"), ("b", "next"), ("c", "raise")], trace)
    shell.run(layers, lambda: trace.append("core"))
    assert trace == ["a before", "b before", "c before", "a caught c says no"]


def test_a_plain_middleware_on_the_async_shell_returns_next() -> None:
    """A plain middleware on asyncio: ``return next()`` puts the rest inside it; one that only
    calls ``next()`` has the rest run right after it returns; both run the rest once."""
    trace: list[str] = []

    def returns_next(ctx: Any, next_: Callable[[], Any]) -> Any:
        trace.append("returns before")
        return next_()

    def calls_next(ctx: Any, next_: Callable[[], Any]) -> None:
        trace.append("calls before")
        next_()
        trace.append("calls after (runs before the rest)")

    async def inner(ctx: Any, next_: Callable[[], Any]) -> None:
        trace.append("inner before")
        await next_()
        trace.append("inner after")

    layers = [("returns", returns_next), ("calls", calls_next), ("inner", inner)]
    asyncio.run(run_chain_async(layers, None, lambda: trace.append("core")))  # type: ignore[arg-type]
    assert trace == ["returns before", "calls before", "calls after (runs before the rest)",
                     "inner before", "core", "inner after"]


def test_the_async_shell_awaits_an_async_innermost_step() -> None:
    trace: list[str] = []

    async def core() -> None:
        await asyncio.sleep(0)
        trace.append("core")

    asyncio.run(run_chain_async([], None, core))
    assert trace == ["core"]


def test_refusal_messages() -> None:
    assert refusal_message(NextNotCalled("auth")) == (
        "connection refused: middleware 'auth' returned without calling next()")
    assert refusal_message(ValueError("bad token")) == "bad token"
    assert refusal_message(PermissionError()) == "PermissionError"
    assert refusal_message(None) == "connection refused"


# --------------------------------------------------------------------------- routes and ctx


class Serves(Plugin):
    def __init__(self, name: str, events: dict[str, Any]) -> None:
        self.name = name
        self._events = events

    def routes(self) -> dict[str, Any]:
        return self._events


def test_dispatch_prefers_the_app_then_the_first_plugin_and_skips_system_events() -> None:
    def app_hello(ctx: Any) -> str:
        return "app"

    def first(ctx: Any) -> str:
        return "first"

    def second(ctx: Any) -> str:
        return "second"

    served = plugin_routes([Serves("one", {"hello": first, "shared": first}),
                            Serves("two", {"hello": second, "shared": second, "own": second})])
    app = {"hello": app_hello, "error": app_hello, "disconnect": app_hello}
    assert handler_for("hello", app, served) is app_hello
    assert handler_for("shared", app, served) is first
    assert handler_for("own", app, served) is second
    assert handler_for("nobody", app, served) is None
    for system in ("error", "disconnect", "disconnecting"):
        assert handler_for(system, app, served) is None


def test_the_router_checks_what_it_is_given() -> None:
    io = IoRouter({"/": NamespaceConfig(), "/chat": NamespaceConfig()}, ControllerTree())
    io.route("hello", len)
    io.of("/chat").route("hello", len)
    assert io.routes_of("/") == {"hello": len} and io.routes_of("/other") == {}
    with pytest.raises(BootError, match="'hello' on '/' is routed twice"):
        io.route("hello", len)
    with pytest.raises(BootError, match="namespace '/nope', which io.namespace does not"):
        io.of("/nope").route("x", len)
    with pytest.raises(BootError, match="is not callable"):
        io.route("y", "len")  # type: ignore[arg-type]
    with pytest.raises(BootError, match="non-empty strings"):
        io.route("", len)


def test_a_packet_ctx_shares_the_connection_and_has_its_own_ack() -> None:
    socket = SocketCore(None, "sid1", "/chat")
    ctx = Context(None, socket, {"QUERY_STRING": "room=a&x=1&x=2"}, {"t": 1},  # type: ignore[arg-type]
                  {"user": "u"})
    assert ctx.query == {"room": "a", "x": "1"} and ctx.namespace == "/chat"
    one = ctx.for_packet("say", ("hi", 2))
    one.ack("ok")
    one.ack("ignored")
    two = ctx.for_packet("say", ())
    assert (one.event, one.args, one.packet) == ("say", ["hi", 2], ["say", "hi", 2])
    assert one.acked and one.ack_values == ("ok",)
    assert not two.acked and two.ack_values == ()
    assert one.session is ctx.session and one.socket is socket and ctx.event is None


def test_ctx_says_whether_the_socket_recovered_its_session() -> None:
    class Manager:
        def recovered(self, sid: str, namespace: str = "/") -> bool:
            return (sid, namespace) == ("back", "/chat")

    class App:
        sio = type("Sio", (), {"manager": Manager()})()

    def ctx(sid: str, app: object) -> Context:
        return Context(app, SocketCore(None, sid, "/chat"), {}, None, {})  # type: ignore[arg-type]

    assert ctx("back", App()).recovered is True
    assert ctx("new", App()).recovered is False
    # An in-memory manager knows nothing of recovery.
    assert ctx("back", type("Plain", (), {"sio": None})()).recovered is False


def test_emits_are_held_until_released_then_go_out_at_once() -> None:
    socket = SocketCore(None, "sid1", "/")
    assert socket.hold("a", (1,)) and socket.hold("b", (1, 2))
    assert socket.take_held() == [("a", (1,)), ("b", (1, 2))]
    assert not socket.hold("c", ())
    assert socket.take_held() == []
    assert socket.emit_to_self("e", (1,)) == {"event": "e", "data": 1, "to": "sid1",
                                               "namespace": "/"}
    assert socket.emit_to_room("r", "e", (1, 2)) == {
        "event": "e", "data": (1, 2), "to": "r", "namespace": "/", "skip_sid": "sid1"}


def test_generated_ids_and_server_options() -> None:
    assert checked_id("user-1") == "user-1"
    for bad in ("", None, 7):
        with pytest.raises(ValueError, match="io.generate_id returned"):
            checked_id(bad)
    config = AppConfig(app_dir=".", env="prod", init={"ping_interval": 5, "cors": True,
                                                      "path": "ws", "allow_eio3": True})
    assert server_options(config) == {"ping_interval": 5, "cors_allowed_origins": "*"}
    config.init = {"cors": False, "transports": ["websocket"]}
    assert server_options(config) == {"transports": ["websocket"], "cors_allowed_origins": []}
