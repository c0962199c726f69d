"""The egg-socket.io style app framework, through `sioctl start --sticky` with 2 workers.

The app is tests/apps/fwapp: its middleware writes each step to the file named by FWAPP_TRACE,
so the tests see the order of before and after halves, even those that run at disconnect.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from sioctl.worker.framework.config import load_config
from sioctl.worker.framework.session import encode_cookie, new_redis_session_cookie
from sioctl.worker.messaging.owners import OWNED_TTL
from tests.support.clients import BoundClient, ips_for_slot, make_client, wait_until
from tests.support.cluster import ENGINES
from tests.support.paths import APPS_DIR

APP_DIR = APPS_DIR / "fwapp"
# The app of each engine: fwapp's middleware and controller are plain functions; on asyncio a
# plain middleware has no after-half and ctx.socket's calls are coroutines (framework/aio.py),
# so the asyncio side serves fwapp_async, the same app written with async def and await next()
# (its config, router and other files are fwapp's own, symlinked).
APP_DIRS = {"eventlet": APP_DIR, "asyncio": APPS_DIR / "fwapp_async"}
KEYS = ["test-key-new", "test-key-old"]
# How long a test waits to be sure that something does NOT arrive.
QUIET = 1.0


class Trace:
    """The lines the app's middleware and routes wrote."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def wait_for(self, line: str, timeout: float = 10.0) -> None:
        wait_until(lambda: line in self.lines(), timeout, what=repr(line))

    def index(self, line: str) -> int:
        lines = self.lines()
        assert line in lines, f"{line!r} not in the trace:\n" + "\n".join(lines)
        return lines.index(line)


@pytest.fixture
def trace(tmp_path: Path) -> Trace:
    return Trace(tmp_path / "trace.txt")


@pytest.fixture
def app_cluster(start_cluster: Any, trace: Trace, engine: str) -> Callable[..., Any]:
    """``app_cluster(env="prod", extra_args=())``: 2 sticky workers of ``engine`` serving its
    app dir (APP_DIRS)."""

    def start(env: str = "prod", extra_args: Sequence[str] = ()) -> Any:
        cluster = start_cluster(
            app=str(APP_DIRS[engine]), extra_args=["--env", env, *extra_args],
            env={"FWAPP_TRACE": str(trace.path)},
        )
        assert f"starting 2 {engine} workers" in cluster.log_text()
        return cluster

    return start


@pytest.fixture
def clients() -> Iterator[Callable[..., BoundClient]]:
    """``client(source_ip, **kwargs)``: a client from that address, shut down after the test."""
    made: list[BoundClient] = []

    def client(source_ip: str = "127.0.0.2", **kwargs: Any) -> BoundClient:
        kwargs.setdefault("reconnection", False)
        made.append(make_client(source_ip, **kwargs))
        return made[-1]

    yield client
    for c in made:
        c.shutdown()


def refusal(client: BoundClient, url: str, **kwargs: Any) -> Any:
    """Connect expecting a refusal; returns the connect_error data the client received."""
    errors: queue.Queue[Any] = queue.Queue()
    client.on("connect_error", errors.put)
    with pytest.raises(Exception, match="failed to connect"):
        client.connect(url, **kwargs)
    return errors.get(timeout=10)


@pytest.mark.parametrize("engine", ENGINES)
def test_connection_middleware_order_and_after_halves_at_disconnect(
    app_cluster: Any, clients: Any, trace: Trace
) -> None:
    cluster = app_cluster()
    client = clients()
    client.record("welcome")
    client.connect(f"{cluster.url}?token=good&tag=A")
    sid = client.get_sid("/")
    # Emitted by the middleware before next(): it still reaches the client, after CONNECT.
    assert client.next_event("welcome") == {"greeting": "hello", "id": sid}
    assert trace.index("conn / A before") < trace.index("auth A accepted")
    assert client.call("join", "room-1", timeout=10) == sorted([sid, "room-1"])
    assert "auth A after" not in trace.lines()

    client.disconnect()
    trace.wait_for("conn / A after")
    lines = trace.lines()
    disconnecting = next(i for i, s in enumerate(lines) if s.startswith("route disconnecting /"))
    assert "room-1" in lines[disconnecting], "rooms are still there while disconnecting"
    assert (
        disconnecting
        < trace.index("route disconnect /")
        < trace.index("auth A after")
        < trace.index("conn / A after")
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_refusals_reach_connect_error_and_run_no_after_halves(
    app_cluster: Any, clients: Any, trace: Trace
) -> None:
    cluster = app_cluster()
    raised = refusal(clients(), f"{cluster.url}?token=bad&tag=B")
    assert raised == {"message": "bad token"}
    silent = refusal(clients(), f"{cluster.url}?token=silent&tag=C")
    assert "auth" in silent["message"] and "next()" in silent["message"]
    # The auth middleware is the innermost: the outer layer saw both attempts start...
    assert "conn / B before" in trace.lines() and "conn / C before" in trace.lines()
    # ...and the refusals ran no code after next() (there was no connection to end).
    good = clients()
    good.connect(f"{cluster.url}?token=good&tag=D")
    assert good.call("ping", "still serving", timeout=10) == {"pong": "still serving"}
    assert not any(line.endswith(("B after", "C after")) for line in trace.lines())


@pytest.mark.parametrize("engine", ENGINES)
def test_packet_middleware_controllers_and_acks(
    app_cluster: Any, clients: Any, trace: Trace
) -> None:
    cluster = app_cluster()
    client = clients()
    client.connect(f"{cluster.url}?token=good")
    assert client.call("ping", "x", timeout=10) == {"pong": "x"}
    assert (
        trace.index("packet ping before")
        < trace.index("controller ping 'x'")
        < trace.index("packet ping after")
    )
    # ctx.ack() with several values answers the ack with all of them.
    assert client.call("two_values", timeout=10) == ("first", "second")


@pytest.mark.parametrize("engine", ENGINES)
def test_dropped_packets_get_no_answer(app_cluster: Any, clients: Any, trace: Trace) -> None:
    cluster = app_cluster()
    client = clients()
    client.connect(f"{cluster.url}?token=good")
    answers: queue.Queue[Any] = queue.Queue()
    client.emit("blocked", "y", callback=lambda *a: answers.put(a))
    with pytest.raises(queue.Empty):
        answers.get(timeout=QUIET)
    assert "packet blocked before" in trace.lines()
    assert "packet blocked after" not in trace.lines()
    assert "controller ping 'y'" not in trace.lines()
    assert client.call("ping", "after drop", timeout=10) == {"pong": "after drop"}


@pytest.mark.parametrize(
    ("event", "message"),
    [("boom", "controller boom"), ("boom_in_middleware", "middleware boom")],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_exceptions_reach_the_client_as_error_and_the_log_once(
    app_cluster: Any, clients: Any, trace: Trace, event: str, message: str
) -> None:
    cluster = app_cluster()
    client = clients()
    errors = client.record("error")
    client.connect(f"{cluster.url}?token=good")
    client.emit(event)
    assert errors.get(timeout=10) == {"message": message, "event": event}
    trace.wait_for(f"route error {event} {message}")
    # The socket stays up.
    assert client.connected
    assert client.call("ping", "alive", timeout=10) == {"pong": "alive"}
    log = cluster.log_text().splitlines()
    failures = [line for line in log if f"event {event!r} failed" in line]
    assert len(failures) == 1, cluster.log_text()


@pytest.mark.parametrize("engine", ENGINES)
def test_namespaces_rooms_and_broadcasts_across_workers(
    app_cluster: Any, clients: Any
) -> None:
    cluster = app_cluster()
    first = clients(ips_for_slot(0, 2)[0])
    second = clients(ips_for_slot(1, 2)[0])
    third = clients(ips_for_slot(1, 2)[0])
    for c in (first, second, third):
        c.record("said")
        c.record("shouted")
        c.connect(f"{cluster.url}?token=good", namespaces=["/", "/chat"])
    slots = {c.call("whoami", timeout=10)["slot"] for c in (first, second)}
    assert slots == {0, 1}

    assert first.call("join", "lobby", timeout=10)
    assert second.call("join", "lobby", timeout=10)
    assert first.call("to_room", ("lobby", "hi room"), timeout=10) == "sent"
    assert second.next_event("said") == "hi room"
    assert first.call("shout", "hi all", timeout=10) == "sent"
    assert second.next_event("shouted") == "hi all"
    assert third.next_event("shouted") == "hi all"
    # socket.to() and socket.broadcast skip the sender; the room skips non-members.
    with pytest.raises(queue.Empty):
        first.next_event("said", timeout=QUIET)
    with pytest.raises(queue.Empty):
        third.next_event("said", timeout=0.1)
    with pytest.raises(queue.Empty):
        first.next_event("shouted", timeout=0.1)

    assert first.call("echo", [1, "two"], namespace="/chat", timeout=10) == [[1, "two"]]
    info = first.call("whoami", namespace="/chat", timeout=10)
    assert info["namespace"] == "/chat" and info["id"] == first.get_sid("/chat")


@pytest.mark.parametrize("engine", ENGINES)
def test_custom_ids_from_generate_id(app_cluster: Any, clients: Any) -> None:
    cluster = app_cluster(env="ids")
    for slot, uid in ((0, "41"), (1, "42")):
        client = clients(ips_for_slot(slot, 2)[0])
        client.connect(f"{cluster.url}?token=good&uid={uid}", namespaces=["/", "/chat"])
        info = client.call("whoami", timeout=10)
        assert info["id"] == client.get_sid("/") == f"user-{uid}"
        assert info["slot"] == slot
        assert client.get_sid("/chat") == f"user-{uid}"
    # The same id twice on one worker is refused, with the reason.
    again = clients(ips_for_slot(1, 2)[0])
    assert refusal(again, f"{cluster.url}?token=good&uid=42") == {
        "message": "socket id 'user-42' is already in use"
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_session_from_a_signed_cookie(app_cluster: Any, clients: Any) -> None:
    cluster = app_cluster()
    data = {"user": "ada", "roles": ["admin"]}
    cases = [
        (encode_cookie(data, KEYS), data),
        (encode_cookie(data, KEYS[1:]), data),  # signed with the older key, still listed
        (encode_cookie(data, ["a-key-nobody-configured"]), {}),
        (encode_cookie(data, KEYS)[:-3] + "AAA", {}),  # tampered signature
        ("garbage", {}),
    ]
    for cookie, expected in cases:
        client = clients()
        client.connect(f"{cluster.url}?token=good", headers={"Cookie": f"SIOCTL_SESS={cookie}"})
        assert client.call("whoami", timeout=10)["session"] == expected, cookie
        client.disconnect()


BROKEN_APPS = [
    (
        "config/config_default.py",
        ('"packet_middleware": ["trace_packet", "guard"]',
         '"packet_middleware": ["trace_packet", "gaurd"]'),
        "config/config_default.py: io.namespace./.packet_middleware: unknown middleware 'gaurd'",
    ),
    (
        "config/config_default.py",
        ('custom = {"greeting": "hello"}', 'custom = {"greeting": "hello"}\nredis_url = "x"'),
        "config/config_default.py: redis_url: unknown config key",
    ),
    (
        "config/config_default.py",
        ('"ping_interval": 5', '"ping_interval": "5"'),
        "config/config_default.py: io.init.ping_interval: expected a number of seconds",
    ),
    (
        "app/router.py",
        ('app.io.of("/chat").route("echo", util.echo)',
         'app.io.of("/nope").route("echo", util.echo)'),
        "app/router.py: route 'echo' on namespace '/nope', which io.namespace does not configure",
    ),
    (
        "app/router.py",
        ('app.io.route("shout", chat.shout)', 'app.io.route("ping", chat.shout)'),
        "app/router.py: event 'ping' on '/' is routed twice",
    ),
]


@pytest.mark.parametrize(("file", "edit", "message"), BROKEN_APPS,
                         ids=["middleware", "config-key", "type", "namespace", "twice"])
def test_mistakes_are_boot_errors_naming_file_and_key(
    run_sioctl: Any, tmp_path: Path, redis_url: str, file: str, edit: tuple[str, str],
    message: str,
) -> None:
    app_dir = tmp_path / "app-copy"
    shutil.copytree(APP_DIR, app_dir)
    target = app_dir / file
    text = target.read_text()
    assert edit[0] in text
    target.write_text(text.replace(edit[0], edit[1]))
    result = run_sioctl(
        "start", str(app_dir), "-w", "2", "-b", "127.0.0.1:0", "--redis", redis_url,
        "--run-dir", str(tmp_path / "run"), "--title", "broken",
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output, output
    assert "Traceback" not in output


ASYNC_APP_DIR = APP_DIR.parent / "asyncapp"
# The router of the async app routing only its plain controller: its middleware is then what
# eventlet refuses.
PLAIN_ROUTER = """
def setup(app):
    app.io.route("shout", app.io.controller.plain.shout)
"""


@pytest.mark.parametrize(("router", "message"), [
    (None, "app/io/controller/chat.py: Chat.echo (routed to 'echo' on '/') is async def, which "
           "the eventlet engine never awaits: serve this app with the asyncio engine "
           "(-k asyncio)"),
    (PLAIN_ROUTER, "app/io/middleware/auth.py: auth.<locals>.middleware (middleware 'auth') "
                   "is async def, which the eventlet engine never awaits"),
], ids=["controller", "middleware"])
def test_async_def_is_refused_on_eventlet_naming_file_and_function(
    run_sioctl: Any, tmp_path: Path, redis_url: str, router: str | None, message: str,
) -> None:
    """Called by eventlet, an ``async def`` action or middleware would only make a coroutine
    that never runs (no ack, an async middleware refusing every connection): the app is
    refused when it loads instead."""
    app_dir = tmp_path / "asyncapp"
    shutil.copytree(ASYNC_APP_DIR, app_dir)
    if router is not None:
        (app_dir / "app" / "router.py").write_text(router)
    # Left to itself (auto), the engine probe would pick asyncio for this app's async defs.
    result = run_sioctl(
        "start", str(app_dir), "-w", "2", "-b", "127.0.0.1:0", "--redis", redis_url,
        "--run-dir", str(tmp_path / "run"), "--title", "asyncapp", "-k", "eventlet",
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output, output
    assert "Traceback" not in output


def test_the_async_app_directory_is_served_by_asyncio_workers(
    start_cluster: Any, clients: Any,
) -> None:
    """The same app on a 2-worker cluster, left to the engine probe: its async defs choose the
    asyncio engine, where its middleware awaits next() and its controllers answer, on each
    worker, with the cluster's manager joining them."""
    cluster = start_cluster(app=str(ASYNC_APP_DIR))
    assert "engine: asyncio (the app is an app directory with async def" in cluster.log_text()
    pids = set()
    for slot in range(2):
        client = clients(ips_for_slot(slot, 2)[0])
        welcome, echoed = client.record("welcome"), client.record("echoed")
        client.connect(cluster.url, auth={"token": "good"})
        sid = client.get_sid("/")
        assert welcome.get(timeout=10) == {"id": sid}
        assert client.call("echo", "hi", timeout=10) == {"echo": ["hi"]}
        assert echoed.get(timeout=10) == "hi"
        assert client.call("shout", "hey", timeout=10) == "HEY"
        answer = client.call("whoami", timeout=10)
        assert answer["id"] == sid
        pids.add(answer["pid"])
    assert pids == set(cluster.worker_pids().values())
    assert refusal(clients(), cluster.url, auth={"token": "bad"}) == {"message": "bad token"}


@pytest.mark.parametrize("engine", ENGINES)
def test_custom_ids_are_unique_across_workers(app_cluster: Any, clients: Any) -> None:
    cluster = app_cluster(env="ids")
    on_slot0, on_slot1 = ips_for_slot(0, 2)[0], ips_for_slot(1, 2)[0]
    first = clients(on_slot0)
    first.connect(f"{cluster.url}?token=good&uid=7")
    assert refusal(clients(on_slot1), f"{cluster.url}?token=good&uid=7") == {
        "message": "socket id 'user-7' is already in use"
    }
    # A connection its middleware refused holds no claim.
    refusal(clients(on_slot0), f"{cluster.url}?token=bad&uid=8")
    clients(on_slot1).connect(f"{cluster.url}?token=good&uid=8")
    # Once the holder leaves, the id is free on every worker.
    first.disconnect()
    later = clients(on_slot1)
    wait_until(lambda: _connects(later, f"{cluster.url}?token=good&uid=7"), 10,
               what="user-7 to be free")
    assert later.get_sid("/") == "user-7"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_respawned_worker_takes_over_its_slots_ids(app_cluster: Any, clients: Any) -> None:
    cluster = app_cluster(env="ids")
    client = clients(ips_for_slot(0, 2)[0], reconnection=True)
    client.connect(f"{cluster.url}?token=good&uid=9")
    old_pid = client.call("whoami", timeout=10)["pid"]
    os.kill(old_pid, signal.SIGKILL)
    # The client reconnects to its slot's new worker and keeps its id at once, although the
    # dead worker's claim has not expired.
    info = wait_until(lambda: _whoami_if_new(client, old_pid), 20, what="a reconnect")
    assert info["id"] == "user-9" and info["slot"] == 0


# Emits sent right after the target came back on its slot's new worker, while the sender still
# remembers the dead worker as the owner (issue 13 item 9: streams lost ~100 of ~270 of these).
AFTER = 60


# Owner records and the forwarding of stale emits are sioctl's manager's: SioctlRedisManager on
# eventlet, AsyncSioctlRedisManager on asyncio.
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("transport", ["pubsub", "streams"])
def test_emits_follow_an_id_to_its_new_worker(
    app_cluster: Any, clients: Any, redis_url: str, transport: str
) -> None:
    """A worker remembers for a while which worker owns a socket id (worker/messaging/owners.py).
    When that owner dies and the id comes back on its replacement, an emit sent on the stale
    memory reaches nobody: pub/sub sees no receiver, streams find the owner record changed; the
    emit is passed to the shared channel and still arrives, and so does every one after it."""
    cluster = app_cluster(env="ids", extra_args=["--redis-transport", transport])
    sender = clients(ips_for_slot(0, 2)[0])
    sender.connect(f"{cluster.url}?token=good&uid=5")
    target = clients(ips_for_slot(1, 2)[0], reconnection=True)
    heard: queue.Queue[Any] = queue.Queue()
    target.on("said", heard.put)
    target.connect(f"{cluster.url}?token=good&uid=9")
    # Only the shared channel is watched: a pattern subscription would also count as a
    # receiver of the dead worker's channel, and hide that nobody listens there.
    shared = SharedChannel(redis_url, transport)
    try:
        # Until the sender's worker has found user-9's owner: the emit no longer goes to the
        # shared channel (the owner record is written just after the connect, and "nobody" is
        # remembered for a moment).
        def sent_to_owner() -> bool:
            assert sender.call("to_room", ("user-9", "before"), timeout=10) == "sent"
            assert heard.get(timeout=10) == "before"
            return not [data for data in shared.read() if data.get("data") == ["before"]]

        wait_until(sent_to_owner, 10, what="an emit routed to user-9's worker")
        old_pid = target.call("whoami", timeout=10)["pid"]
        remembered_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        wait_until(lambda: _whoami_if_new(target, old_pid), 20, what="a reconnect")
        shared.read()
        sent = [f"after-{i}" for i in range(AFTER)]
        for message in sent:
            assert sender.call("to_room", ("user-9", message), timeout=10) == "sent"
        stale = time.monotonic() - remembered_at < OWNED_TTL - 1
        got = _drain(heard, AFTER)
        forwarded = [data["data"][0] for data in shared.read() if data.get("forwarded")]
    finally:
        shared.close()
    print(f"{transport}: {len(got)} of {AFTER} emits after the reconnect arrived, "
          f"{len(forwarded)} forwarded")
    assert sorted(got) == sorted(sent), f"lost {sorted(set(sent) - set(got))}"
    if stale:
        # Still within the remembered answer: the first emit went the stale way, passed on.
        assert forwarded[:1] == ["after-0"], forwarded


class SharedChannel:
    """The messages on the shared channel from now on: pub/sub or its stream."""

    def __init__(self, redis_url: str, transport: str) -> None:
        self.client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.transport = transport
        if transport == "pubsub":
            self.pubsub = self.client.pubsub()
            self.pubsub.subscribe("socketio")
            assert self.pubsub.get_message(timeout=5.0)["type"] == "subscribe"
        else:
            newest = self.client.xrevrange("socketio:stream", count=1)
            self.last = newest[0][0] if newest else b"0-0"

    def read(self) -> list[dict[str, Any]]:
        """What was sent since the last call."""
        seen = []
        if self.transport == "pubsub":
            while (message := self.pubsub.get_message(timeout=0.5)) is not None:
                if message["type"] == "message":
                    seen.append(json.loads(message["data"]))
            return seen
        time.sleep(0.5)
        for entry_id, fields in self.client.xrange("socketio:stream", min=b"(" + self.last):
            self.last = entry_id
            seen.append(json.loads(fields[b"d"]))
        return seen

    def close(self) -> None:
        if self.transport == "pubsub":
            self.pubsub.close()
        self.client.close()


def _drain(heard: queue.Queue[Any], count: int, quiet: float = 2.0) -> list[Any]:
    """What arrives until ``count`` messages did, or nothing more came for ``quiet`` s."""
    got: list[Any] = []
    while len(got) < count:
        try:
            got.append(heard.get(timeout=quiet))
        except queue.Empty:
            break
    return got


def _connects(client: BoundClient, url: str) -> bool:
    try:
        client.connect(url)
    except Exception:
        return False
    return True


def _whoami_if_new(client: BoundClient, old_pid: int) -> dict[str, Any] | None:
    if not client.connected:
        return None
    try:
        info = client.call("whoami", timeout=2)
    except Exception:
        return None
    return info if info["pid"] != old_pid else None


@pytest.mark.parametrize("engine", ENGINES)
def test_redis_backed_sessions_load_and_save(
    app_cluster: Any, clients: Any, redis_url: str
) -> None:
    cluster = app_cluster(env="redisess")
    config = load_config(str(APP_DIR), "redisess")
    store = redis.Redis.from_url(redis_url)
    header = new_redis_session_cookie({"user": "grace"}, config, store)
    cookie = header.split(";", 1)[0]
    assert "grace" not in cookie  # only a signed id travels
    first = clients(ips_for_slot(0, 2)[0])
    first.connect(f"{cluster.url}?token=good", headers={"Cookie": cookie})
    assert first.call("whoami", timeout=10)["session"] == {"user": "grace"}
    assert first.call("remember", "blue", timeout=10) == "saved"
    first.disconnect()
    # Another worker reads what the first one saved.
    second = clients(ips_for_slot(1, 2)[0])
    second.connect(f"{cluster.url}?token=good", headers={"Cookie": cookie})
    assert second.call("whoami", timeout=10)["session"] == {"user": "grace", "remembered": "blue"}
