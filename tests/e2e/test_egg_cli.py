"""The command line the egg way: egg-scripts' ``start --port=7001 --workers=4 --title=x
--daemon --sticky``, ``egg-bin dev --sticky``, and egg's ``startCluster({sticky: true, ...})``
as ``sioctl.start_cluster(...)`` running a real cluster from a script.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import sioctl
from sioctl.cli.main import cli
from tests.support.clients import (
    children_of,
    free_port,
    ips_for_slot,
    make_client,
    wait_for_exit,
    wait_until,
)
from tests.support.cluster import Cluster
from tests.support.paths import REPO_ROOT


def _isolated_env(tmp_path: Path, **more: str) -> dict[str, str]:
    env = {k: "" for k in os.environ if k.startswith("SIOCTL_")}
    env["SIOCTL_RUN_DIR"] = str(tmp_path / "run")
    env.update(more)
    return env


def _resolved(tmp_path: Path, *args: str, **env: str) -> dict:
    result = CliRunner().invoke(cli, ["start", "--print-config", "app:app", *args],
                                env=_isolated_env(tmp_path, **env))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_egg_scripts_command_line(tmp_path: Path) -> None:
    shown = _resolved(tmp_path, "--port=7001", "--workers=4", "--title=x", "--daemon",
                      "--sticky")
    assert (shown["binds"], shown["workers"], shown["title"], shown["daemon"]) == (
        ["0.0.0.0:7001"], 4, "x", True)
    # The title names the cluster; without one it follows the port.
    assert _resolved(tmp_path, "--port", "7010")["title"] == "sioctl-7010"
    assert _resolved(tmp_path, SIOCTL_PORT="7011")["binds"] == ["0.0.0.0:7011"]


@pytest.mark.parametrize(
    ("binds", "expected"),
    [
        (["-b", "127.0.0.1"], ["127.0.0.1:7005"]),
        (["-b", "[::1]"], ["[::1]:7005"]),
        (["-b", "127.0.0.1:7005", "-b", "[::]"], ["127.0.0.1:7005", "[::]:7005"]),
    ],
)
def test_port_takes_the_hosts_of_bind(tmp_path: Path, binds: list[str], expected: list[str]
                                      ) -> None:
    assert _resolved(tmp_path, *binds, "--port", "7005")["binds"] == expected


def test_a_port_given_twice_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["start", "--print-config", "app:app", "-b",
                                      "127.0.0.1:7006", "--port", "7005"],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 2
    assert "bind '127.0.0.1:7006' names port 7006, --port 7005: give the port once" in \
        result.stderr


def test_start_cluster_refuses_what_start_refuses() -> None:
    with pytest.raises(TypeError, match="unknown setting 'redis'"):
        sioctl.start_cluster("app:app", redis="redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="0 is not a number of workers"):
        sioctl.start_cluster("app:app", workers=0)
    with pytest.raises(ValueError, match="seconds; 30000 looks like milliseconds"):
        sioctl.start_cluster("app:app", keepalive=30000)
    with pytest.raises(ValueError, match="sticky is the only mode"):
        sioctl.start_cluster("app:app", sticky=False)


START_SCRIPT = """
import sys

import sioctl

sys.exit(sioctl.start_cluster({app!r}, workers=2, bind={bind!r}, sticky=True,
                              redis_url={redis!r}, run_dir={run_dir!r}, title={title!r}))
"""


def test_start_cluster_blocks_serving_until_stopped(redis_url: str, tmp_path: Path) -> None:
    cluster = Cluster("tests.apps.chat:sio", 2, redis_url, (), {}, tmp_path)
    script = START_SCRIPT.format(app=cluster.app, bind=f"127.0.0.1:{cluster.port}",
                                 redis=redis_url, run_dir=cluster.run_base, title=cluster.title)
    with open(cluster.log_path, "ab") as log:
        cluster.proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT,
                                        stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT)
    clients = []
    try:
        cluster.wait_ready()
        for slot in (0, 1):
            client = make_client(ips_for_slot(slot, 2)[0], reconnection=False)
            clients.append(client)
            client.connect(cluster.url)
            assert client.call("whoami", timeout=10)["slot"] == slot
        # It blocks like `sioctl start`: the script is still running while the cluster serves.
        assert cluster.proc.poll() is None
    finally:
        for client in clients:
            client.shutdown()
        survivors = cluster.stop()
    assert survivors == []
    assert cluster.proc.returncode == 0, cluster.log_text()


def test_dev_sticky_is_one_process_on_the_given_port(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sioctl", "dev", "--sticky", "--port", str(port), "--no-reload",
         "--run-dir", str(tmp_path / "run"), "tests.apps.chat:sio"],
        cwd=REPO_ROOT, env=_isolated_env(tmp_path), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = make_client("127.0.0.1", reconnection=False)
    children: list[int] = []
    try:
        def connected() -> bool:
            try:
                client.connect(f"http://127.0.0.1:{port}")
            except Exception:
                return False
            return True

        wait_until(connected, 30, interval=0.2, what="the dev server")
        # One worker process serves it: slot 0, the only child of the reloader.
        assert client.call("whoami", timeout=10)["slot"] in (0, -1)
        children = children_of(proc.pid)
        assert len(children) == 1
    finally:
        client.shutdown()
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
    assert wait_for_exit(children, 10) == []
    assert f"127.0.0.1:{port} (1 worker" in output, output
