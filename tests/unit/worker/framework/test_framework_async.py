"""The framework's async shell (worker/framework/aio.py), in process: an app directory with
``async def`` middleware and controllers loaded on a real ``socketio.AsyncServer``, a plugin with
async and plain hooks, and a Socket.IO client speaking Engine.IO long-polling to the server's
ASGI app through real ASGI calls under ``asyncio.run`` (no network, no worker: this is the
framework's composition, python-socketio's own dispatch included).

The same app behaviours run on eventlet, end to end, in test_framework.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from sioctl.worker.errors import BootError
from sioctl.worker.framework.aio import AsyncApplication, load_async_app_dir
from sioctl.worker.framework.config import load_config
from sioctl.worker.framework.core import AppCore
from sioctl.worker.framework.plugins import Plugin
from tests.support.asgi_polling import PollingClient, settled, write_app
from tests.support.paths import APPS_DIR

FILES = {
    "config/config_default.py": """
        io = {"namespace": {"/": {"connection_middleware": ["auth"],
                                  "packet_middleware": ["timing", "plain"]}}}
    """,
    "app/router.py": """
        def setup(app):
            app.trace = []
            chat = app.io.controller.chat
            for event in ("echo", "acked", "boom", "rooms", "tell_room"):
                app.io.route(event, getattr(chat, event))
            app.io.route("plain_action", app.io.controller.plain.shout)
            app.io.route("disconnect", chat.gone_badly if app.config.custom else chat.gone)
            app.io.route("error", chat.failed)
    """,
    # Connection middleware: its after-half runs at disconnect.
    "app/io/middleware/auth.py": """
        import asyncio

        def auth(app):
            async def middleware(ctx, next):
                auth = ctx.auth or {}
                app.trace.append(f"auth before {auth.get('name')}")
                if auth.get("refuse"):
                    raise PermissionError(auth["refuse"])
                if auth.get("skip"):
                    return
                await ctx.socket.emit("hello", "held until the CONNECT reply")
                await asyncio.sleep(0)
                await next()
                app.trace.append(f"auth after {auth.get('name')}")
                if auth.get("fail_after"):
                    raise RuntimeError("the after-half failed")
            return middleware
    """,
    "app/io/middleware/timing.py": """
        def timing(app):
            async def middleware(ctx, next):
                app.trace.append(f"timing before {ctx.event}")
                await next()
                app.trace.append(f"timing after {ctx.event}")
            return middleware
    """,
    # A plain middleware on asyncio returns next().
    "app/io/middleware/plain.py": """
        def plain(app):
            def middleware(ctx, next):
                app.trace.append(f"plain {ctx.event}")
                if ctx.event == "drop":
                    return None
                return next()
            return middleware
    """,
    "app/io/controller/chat.py": """
        import asyncio
        from sioctl import Controller

        class Chat(Controller):
            async def echo(self):
                await self.ctx.socket.emit("echoed", *self.ctx.args)
                return {"echo": self.ctx.args}

            async def acked(self):
                await asyncio.sleep(0)
                self.ctx.ack("acked", 1)
                return "ignored: the ack counts"

            async def boom(self):
                raise RuntimeError("kaboom")

            async def rooms(self):
                await self.ctx.socket.join("team")
                return sorted(self.ctx.socket.rooms)

            async def tell_room(self):
                await self.ctx.socket.to("team").emit("told", self.ctx.args[0])

            async def gone(self):
                self.app.trace.append(f"disconnect route {self.ctx.args[0]}")

            async def gone_badly(self):
                raise RuntimeError("the disconnect route failed")

            def failed(self):
                self.app.trace.append(f"error route {self.ctx.error}")
    """,
    "config/config_failing.py": """
        custom = {"failing": True}
    """,
    # A plain (sync) controller function on asyncio: called as it is.
    "app/io/controller/plain.py": """
        def shout(ctx):
            return ctx.args[0].upper()
    """,
}


class Recorder(Plugin):
    """A plugin with an async ``refuse`` and ``disconnected``, a plain ``connected``, and a
    route; it writes to the app's trace."""

    name = "recorder"

    def __init__(self, app: AppCore) -> None:
        self.app = app

    async def refuse(self, sid: str, auth: Any) -> str | None:
        await asyncio.sleep(0)
        return "the recorder says no" if (auth or {}).get("plugin_no") else None

    def connected(self, ctx: Any) -> None:
        self.app.trace.append(f"plugin connected {(ctx.auth or {}).get('name')}")  # type: ignore[attr-defined]

    async def disconnected(self, sid: str) -> None:
        await asyncio.sleep(0)
        self.app.trace.append("plugin disconnected")  # type: ignore[attr-defined]

    def routes(self) -> dict[str, Any]:
        async def ping(ctx: Any) -> str:
            return f"pong {ctx.args[0]}"

        return {"ping": ping, "echo": lambda ctx: "the app's route wins"}


@pytest.fixture
def app(tmp_path: Path) -> AsyncApplication:
    return load_async_app_dir(str(write_app(tmp_path, FILES)), "prod", plugins=(Recorder,))


def test_async_middleware_controllers_and_plugin_hooks(app: Any) -> None:
    async def scenario() -> None:
        client = PollingClient(app.asgi_app)
        await client.open({"name": "ann"})
        seen = await client.until('2["hello"')
        assert seen[0].startswith('0{"sid":')  # the CONNECT reply before the held emit
        assert app.trace == ["auth before ann", "plugin connected ann"]

        await client.send('21["echo","x"]')
        assert await client.until("31") == ['2["echoed","x"]', '31[{"echo":["x"]}]']
        await client.send('22["acked"]')
        assert await client.until("32") == ['32["acked",1]']
        await client.send('23["ping",7]')
        assert await client.until("33") == ['33["pong 7"]']
        await client.send('24["plain_action","hey"]')
        assert await client.until("34") == ['34["HEY"]']
        await client.send('25["rooms"]')
        [rooms] = await client.until("35")
        assert "team" in json.loads(rooms[2:])[0]
        assert app.trace[2:5] == ["timing before echo", "plain echo", "timing after echo"]

        # A packet middleware that skips next(): no answer, and the outer after-half unwound.
        await client.send('26["drop"]')
        await settled(app, "plain drop")
        assert "timing after drop" not in app.trace
        await client.send('27["boom"]')
        seen = await client.until('2["error"')
        assert seen == ['2["error",{"message":"kaboom","event":"boom"}]']
        await settled(app, "error route kaboom")
        await client.send('28["echo","y"]')
        assert await client.until("3") == ['2["echoed","y"]', '38[{"echo":["y"]}]']

        # The disconnect: the app's route, the plugin's hook, then the after-halves.
        before = len(app.trace)
        await client.send("1")
        await settled(app, "auth after ann")
        assert app.trace[before:] == ["disconnect route client disconnect",
                                      "plugin disconnected", "auth after ann"]
        await app.sio.shutdown()

    asyncio.run(scenario())


@pytest.mark.parametrize(("auth", "message", "middleware_ran"), [
    ({"name": "bob", "refuse": "no entry"}, "no entry", True),
    ({"name": "bob", "skip": True},
     "connection refused: middleware 'auth' returned without calling next()", True),
    ({"name": "bob", "plugin_no": True}, "the recorder says no", False),
])
def test_refusals_reach_connect_error(app: Any, auth: dict[str, Any], message: str,
                                      middleware_ran: bool) -> None:
    async def scenario() -> None:
        client = PollingClient(app.asgi_app)
        await client.open(auth)
        [refused] = await client.until("4")
        assert json.loads(refused[1:]) == {"message": message}
        await app.sio.shutdown()

    asyncio.run(scenario())
    assert app.trace == (["auth before bob"] if middleware_ran else [])


def test_failures_at_disconnect_are_logged_and_the_rest_still_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app: Any = load_async_app_dir(str(write_app(tmp_path, FILES)), "failing",
                                  plugins=(Recorder,))

    async def scenario() -> None:
        client = PollingClient(app.asgi_app)
        await client.open({"name": "cat", "fail_after": True})
        await client.until('2["hello"')
        await client.send("1")
        await settled(app, "auth after cat")
        await app.sio.shutdown()

    with caplog.at_level("ERROR", logger="sioctl.app"):
        asyncio.run(scenario())
    assert app.trace == ["auth before cat", "plugin connected cat", "plugin disconnected",
                         "auth after cat"]
    failures = [(r.getMessage(), str(r.exc_info[1]) if r.exc_info else None)
                for r in caplog.records]
    assert failures == [
        ("disconnect handler of / failed", "the disconnect route failed"),
        ("connection middleware of / failed after disconnect", "the after-half failed"),
    ]


def test_rooms_reach_the_other_sockets(app: Any) -> None:
    async def scenario() -> None:
        one, two = PollingClient(app.asgi_app), PollingClient(app.asgi_app)
        for client, name in ((one, "one"), (two, "two")):
            await client.open({"name": name})
            await client.until('2["hello"')
            await client.send('21["rooms"]')
            await client.until("31")
        await one.send('22["tell_room","hi"]')
        assert await two.until('2["told"') == ['2["told","hi"]']
        await one.until("32")
        assert not [p for p in one.packets if "told" in p]  # the sender is skipped
        await app.sio.shutdown()

    asyncio.run(scenario())


def test_what_the_shells_refuse_at_load(tmp_path: Path) -> None:
    write_app(tmp_path, FILES)

    class Blocking(AsyncApplication):
        awaits = False  # a shell that calls hooks without awaiting them, as eventlet's

    with pytest.raises(BootError, match=r"recorder plugin defines async hooks \(refuse, "
                                        r"disconnected\): it needs the asyncio engine"):
        Blocking(load_config(str(tmp_path), "prod"), plugins=(Recorder,))

    class WsgiOnly(Plugin):
        name = "wsgi-only"

        def wrap_wsgi(self, app: Any) -> Any:
            return app

    with pytest.raises(BootError, match="wsgi-only plugin serves HTTP through wrap_wsgi only"):
        load_async_app_dir(str(tmp_path), "prod", plugins=(lambda app: WsgiOnly(),))

    (tmp_path / "config" / "config_redis.py").write_text('session = {"store": "redis"}\n')
    with pytest.raises(BootError, match="a 'redis' session store needs a Redis: set io.redis"):
        load_async_app_dir(str(tmp_path), "redis")


def test_async_def_is_refused_by_a_shell_that_does_not_await(tmp_path: Path) -> None:
    """On eventlet an ``async def`` action, route or middleware would only make a coroutine
    that never runs: the app is refused at load, naming the file and the function."""
    write_app(tmp_path, FILES)

    class Blocking(AsyncApplication):
        awaits = False  # a shell that calls without awaiting, as eventlet's

    def load(*plugins: Any) -> None:
        Blocking(load_config(str(tmp_path), "prod"), plugins=plugins).setup()

    with pytest.raises(BootError, match=r"^app/io/controller/chat.py: Chat.echo \(routed to "
                                        r"'echo' on '/'\) is async def, which the eventlet "
                                        r"engine never awaits: .*\(-k asyncio\)"):
        load()
    (tmp_path / "app" / "router.py").write_text(
        "def setup(app):\n    app.trace = []\n"
        "    app.io.route('shout', app.io.controller.plain.shout)\n")

    class AsyncRoute(Plugin):
        name = "async-route"

        def routes(self) -> dict[str, Any]:
            async def ping(ctx: Any) -> str:
                return "pong"

            return {"ping": ping}

    with pytest.raises(BootError, match=r"test_framework_async.py: test_async_def_is_refused"
                                        r".*ping \(the async-route plugin's 'ping' route\)"):
        load(lambda app: AsyncRoute())
    with pytest.raises(BootError, match=r"^app/io/middleware/auth.py: auth.<locals>.middleware "
                                        r"\(middleware 'auth'\) is async def"):
        load()


ASYNC_APP_DIR = APPS_DIR / "asyncapp"


def test_the_async_egg_style_app_runs_on_the_async_shell() -> None:
    """tests/apps/asyncapp, which eventlet refuses (test_framework.py), served on asyncio."""
    app: Any = load_async_app_dir(str(ASYNC_APP_DIR), "prod")

    async def scenario() -> None:
        client = PollingClient(app.asgi_app)
        await client.open({"token": "good"})
        [reply, welcome] = await client.until('2["welcome"')
        sid = json.loads(reply[1:])["sid"]
        assert json.loads(welcome[1:]) == ["welcome", {"id": sid}]
        await client.send('21["echo","hi"]')
        assert await client.until("31") == ['2["echoed","hi"]', '31[{"echo":["hi"]}]']
        await client.send('22["shout","hey"]')
        assert await client.until("32") == ['32["HEY"]']
        await client.send('23["whoami"]')
        [answer] = await client.until("33")
        assert json.loads(answer[2:])[0]["id"] == sid
        refused = PollingClient(app.asgi_app)
        await refused.open({"token": "bad"})
        assert await refused.until("4") == ['4{"message":"bad token"}']
        await app.sio.shutdown()

    asyncio.run(scenario())
