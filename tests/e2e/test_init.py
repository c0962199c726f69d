"""``sioctl init``: the skeleton's files, refusing a non-empty directory, a config that loads,
and ``sioctl dev`` serving the skeleton at once."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import socketio
from click.testing import CliRunner

from sioctl.cli import skeleton
from sioctl.cli.main import cli
from sioctl.worker.framework.config import is_app_dir, load_config
from sioctl.worker.framework.loading import async_functions
from tests.support.clients import free_port, wait_until

BOOT_TIMEOUT = 30.0
EXIT_TIMEOUT = 20.0


def _init(directory: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["init", str(directory), *extra])
    return result.exit_code, result.stdout, result.stderr


def _tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("engine", skeleton.ENGINES)
def test_init_writes_the_skeleton(tmp_path: Path, engine: str) -> None:
    target = tmp_path / "chat"
    code, out, err = _init(target, "--engine", engine)
    assert code == 0, err
    assert sorted(_tree(target)) == sorted(skeleton.files())
    assert is_app_dir(str(target))
    assert "cd " in out and "sioctl dev" in out
    for relative in skeleton.files():
        compile((target / relative).read_text(), relative, "exec")
    # The engine probe reads the engine off the code: async def only in the asyncio skeleton.
    found = async_functions(str(target))
    if engine == "asyncio":
        assert {"app/io/middleware/auth.py: auth.<locals>.middleware",
                "app/io/controller/chat.py: ping"} <= set(found)
        assert "await next()" in (target / "app/io/middleware/log_packet.py").read_text()
    else:
        assert found == []


def test_each_skeleton_gets_its_own_key(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    _init(first)
    _init(second)
    assert load_config(str(first), "local").keys != load_config(str(second), "local").keys


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    target = tmp_path / "chat"
    _init(target)
    (target / "notes.txt").write_text("mine")
    (target / "app" / "router.py").write_text("# edited\n")
    before = _tree(target)
    code, out, err = _init(target)
    assert code == 1
    assert err.splitlines() == [
        f"sioctl: error: {target} is not empty; pass --force to write the skeleton into it "
        "anyway (its files of the same names are replaced)"
    ]
    assert _tree(target) == before
    # --force writes the skeleton again and leaves other files alone.
    code, _, err = _init(target, "--force")
    assert code == 0, err
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "app" / "router.py").read_text() == skeleton.ROUTER


def test_init_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("")
    code, _, err = _init(target, "--force")
    assert code == 1 and err.splitlines() == [f"sioctl: error: {target} exists and is not a "
                                              "directory"]


@pytest.mark.parametrize("env_name", ["local", "prod"])
def test_generated_config_loads(tmp_path: Path, env_name: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_KEYS", raising=False)
    _init(tmp_path / "chat")
    config = load_config(str(tmp_path / "chat"), env_name)
    assert len(config.keys) == 1 and len(config.keys[0]) >= 32
    assert set(config.namespaces) == {"/", "/chat"}
    for namespace in config.namespaces.values():
        assert namespace.connection_middleware == ["auth"]
        assert namespace.packet_middleware == ["log_packet"]
    assert config.init["ping_interval"] == 25
    assert config.redis_url is None
    assert config.init.get("cors") == ("*" if env_name == "local" else None)


def test_prod_keys_come_from_the_environment(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _init(tmp_path / "chat")
    monkeypatch.setenv("APP_KEYS", "new-key,old-key")
    assert load_config(str(tmp_path / "chat"), "prod").keys == ["new-key", "old-key"]


def _connect(url: str, **kwargs: object) -> tuple[socketio.Client, list[object]]:
    """A client and the connect_error payloads it got; raises ConnectionError if refused."""
    client = socketio.Client(reconnection=False)
    refusals: list[object] = []
    client.on("connect_error", refusals.append)
    try:
        client.connect(url, wait_timeout=5, **kwargs)
    except socketio.exceptions.ConnectionError:
        # Only a refusal by the server fails a namespace; a server not up yet fails the engine.
        if not client.failed_namespaces:
            raise
    return client, refusals


def _room_message(url: str) -> object:
    """What bob receives when alice says "hi" in the lobby of /chat."""
    alice = socketio.Client(reconnection=False)
    bob = socketio.Client(reconnection=False)
    received: list[object] = []
    bob.on("message", lambda data: received.append(data["text"]), namespace="/chat")
    try:
        for client in (alice, bob):
            client.connect(f"{url}?token=demo", namespaces=["/chat"], wait_timeout=5)
            assert client.call("join", "lobby", namespace="/chat", timeout=5) == {
                "joined": "lobby"}
        alice.emit("message", {"room": "lobby", "text": "hi"}, namespace="/chat")
        wait_until(lambda: received, 10, what="the room message")
        return received[0]
    finally:
        alice.disconnect()
        bob.disconnect()


@pytest.mark.parametrize("engine", skeleton.ENGINES)
def test_init_then_dev_serves_the_skeleton(tmp_path: Path, engine: str) -> None:
    app = tmp_path / "chat"
    assert _init(app, "--engine", engine)[0] == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The run directory holds Unix sockets: it cannot live under pytest's long tmp_path.
    run_base = tempfile.mkdtemp(prefix="sio")
    log_path = tmp_path / "dev.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIOCTL_")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sioctl", "dev", str(app), "-b", f"127.0.0.1:{port}",
             "--run-dir", run_base],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )

    def fail(message: str) -> None:
        pytest.fail(f"{message}\n--- sioctl dev log ---\n{log_path.read_text(errors='replace')}")

    try:
        answer: list[object] = []

        def ping_answered() -> bool:
            if proc.poll() is not None:
                fail(f"sioctl dev exited with status {proc.returncode}")
            with contextlib.suppress(socketio.exceptions.SocketIOError, OSError):
                client, refusals = _connect(url, auth={"token": "demo"})
                try:
                    if refusals:
                        fail(f"the token was refused: {refusals}")
                    answer.append(client.call("ping", "hello", timeout=5))
                    return True
                finally:
                    client.disconnect()
            return False

        wait_until(ping_answered, BOOT_TIMEOUT, what="the skeleton to answer ping")
        assert answer == [{"pong": "hello"}]

        client, refusals = _connect(url)
        client.disconnect()
        assert refusals and "token required" in str(refusals[0]), refusals
        # The room message goes through the awaited (or plain) join and to(room).emit.
        assert _room_message(url) == "hi"
        # The engine probe chose the engine from the skeleton's code.
        served_on_asyncio = " on asyncio (" in log_path.read_text(errors="replace")
        assert served_on_asyncio == (engine == "asyncio")

        # An edited controller is served after dev's restart, on the same engine. The mtime
        # moves by whole seconds: the bytecode cache compares it in seconds.
        controller = app / "app" / "io" / "controller" / "chat.py"
        stat = controller.stat()
        controller.write_text(controller.read_text().replace(
            '{"pong": ctx.args[0] if ctx.args else None}', '{"pong": "edited"}'))
        os.utime(controller, (stat.st_atime + 2, stat.st_mtime + 2))
        answer.clear()
        wait_until(lambda: ping_answered() and answer[-1] == {"pong": "edited"}, BOOT_TIMEOUT,
                   what="the edited skeleton to answer ping")
        served = log_path.read_text(errors="replace").count(" on asyncio (")
        assert served >= 2 if engine == "asyncio" else served == 0

        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            fail(f"sioctl dev still runs {EXIT_TIMEOUT:g}s after SIGINT")
        assert code == 0, log_path.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(run_base, ignore_errors=True)
