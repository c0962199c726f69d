"""Unit tests of the command line's pure pieces: settings, env vars, run dirs, status, reloader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sioctl.cli import config, daemon, dev, reloader, rundir, status, stopping
from sioctl.cli.main import cli
from sioctl.cluster import control

GUNICORN_CONF = """
import multiprocessing  # a module import, as real config files have

bind = ["127.0.0.1:8123", "127.0.0.1:8124"]
workers = 3
timeout = 90
loglevel = "warning"
wsgi_app = "myproject.wsgi:app"
raw_env = ["FOO=bar"]
worker_class = "eventlet"
threads = 4
helper_value = 42

def post_fork(server, worker):
    pass
"""


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    # Every SIOCTL_* variable of the surrounding shell is cleared so tests see only their own.
    env = {k: "" for k in os.environ if k.startswith("SIOCTL_")}
    env["SIOCTL_RUN_DIR"] = str(tmp_path / "run")
    return env


def _print_config(tmp_path: Path, args: list[str], env: dict[str, str] | None = None) -> dict:
    runner = CliRunner()
    full_env = _isolated_env(tmp_path)
    full_env.update(env or {})
    result = runner.invoke(cli, ["start", "--print-config", *args], env=full_env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "gunicorn.conf.py"
    path.write_text(GUNICORN_CONF)
    return path


# --- gunicorn config file --------------------------------------------------------------------


def test_config_file_values_and_ignored_names(conf: Path) -> None:
    loaded = config.load_config_file(str(conf))
    assert loaded.values["bind"] == ["127.0.0.1:8123", "127.0.0.1:8124"]
    assert loaded.values["workers"] == 3
    assert loaded.values["wsgi_app"] == "myproject.wsgi:app"
    assert loaded.values["raw_env"] == ["FOO=bar"]
    # worker_class picks the engine (-k); gunicorn settings that do not apply are named; plain
    # variables are not gunicorn's business.
    assert loaded.values["worker_class"] == "eventlet"
    assert loaded.ignored == ["post_fork", "threads"]
    assert "helper_value" not in loaded.values


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(click.BadParameter, match="doesn't exist"):
        config.load_config_file(str(tmp_path / "nope.py"))


def test_broken_config_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(click.BadParameter, match="cannot read config file"):
        config.load_config_file(str(path))


def test_bad_value_in_config_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text("workers = 'many'\n")
    with pytest.raises(click.BadParameter) as info:
        config.load_config_file(str(path))
    assert "workers" in str(info.value.message)
    assert "\n" not in info.value.message


def test_precedence_cli_over_env_over_file(tmp_path: Path, conf: Path) -> None:
    from_file = _print_config(tmp_path, ["-c", str(conf)])
    assert from_file["workers"] == 3
    assert from_file["binds"] == ["127.0.0.1:8123", "127.0.0.1:8124"]
    assert from_file["app"] == "myproject.wsgi:app"
    assert from_file["timeout"] == 90
    assert from_file["loglevel"] == "warning"
    assert from_file["title"] == "sioctl-8123"

    env = {"SIOCTL_WORKERS": "5", "SIOCTL_BIND": "127.0.0.1:9001", "SIOCTL_APP": "env:app"}
    from_env = _print_config(tmp_path, ["-c", str(conf)], env)
    assert (from_env["workers"], from_env["binds"], from_env["app"]) == (
        5, ["127.0.0.1:9001"], "env:app"
    )

    from_cli = _print_config(
        tmp_path, ["-c", str(conf), "-w", "7", "-b", "127.0.0.1:9002", "cli:app"], env
    )
    assert (from_cli["workers"], from_cli["binds"], from_cli["app"]) == (
        7, ["127.0.0.1:9002"], "cli:app"
    )


def test_config_file_from_env_and_ignored_warning(tmp_path: Path, conf: Path) -> None:
    env = _isolated_env(tmp_path)
    env["SIOCTL_CONFIG"] = str(conf)
    result = CliRunner().invoke(cli, ["start", "--print-config"], env=env)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["workers"] == 3
    warning = [line for line in result.stderr.splitlines() if "ignoring" in line]
    assert warning == [
        "sioctl: ignoring gunicorn settings that do not apply: post_fork, threads"
    ]


def test_defaults(tmp_path: Path) -> None:
    settings = _print_config(tmp_path, ["app:app"])
    assert settings["binds"] == ["0.0.0.0:7001"]
    assert settings["workers"] == (os.cpu_count() or 1)
    assert settings["title"] == "sioctl-7001"
    assert settings["run_dir"] == str(tmp_path / "run" / "sioctl-7001")
    assert settings["chdir"] == os.getcwd()
    assert settings["redis_url"] is None
    assert settings["daemon"] is False


def test_env_binds_split_on_spaces_and_commas(tmp_path: Path) -> None:
    env = {"SIOCTL_BIND": "127.0.0.1:7101 127.0.0.2:7102,[::1]:7103"}
    settings = _print_config(tmp_path, ["app:app"], env)
    assert settings["binds"] == ["127.0.0.1:7101", "127.0.0.2:7102", "[::1]:7103"]
    assert settings["title"] == "sioctl-7101"


def test_env_options(tmp_path: Path) -> None:
    env = {
        "SIOCTL_TITLE": "chat",
        "SIOCTL_ENV": "prod",
        "SIOCTL_DAEMON": "1",
        "SIOCTL_REDIS": "redis://user:hunter2@127.0.0.1:6390/1",
        "SIOCTL_REDIS_CHANNEL": "chat",
        "SIOCTL_TIMEOUT": "12.5",
        "SIOCTL_GRACEFUL_TIMEOUT": "4",
        "SIOCTL_LOG_LEVEL": "DEBUG",
        "SIOCTL_ACCESS_LOGFILE": "access.log",
    }
    settings = _print_config(tmp_path, ["app:app"], env)
    assert settings["title"] == "chat"
    assert settings["env"] == "prod"
    assert settings["daemon"] is True
    assert settings["redis_channel"] == "chat"
    assert settings["timeout"] == 12.5
    assert settings["graceful_timeout"] == 4
    assert settings["loglevel"] == "debug"
    assert settings["accesslog"] == os.path.join(os.getcwd(), "access.log")
    # --print-config never shows a Redis password.
    assert settings["redis_url"] == "redis://user:***@127.0.0.1:6390/1"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["app:app", "-w", "0"], {}, "0 is not in the range"),
        (["app:app"], {"SIOCTL_WORKERS": "none"}, "SIOCTL_WORKERS"),
        (["app:app", "-b", "127.0.0.1:http"], {}, "port 'http' is not a number"),
        (["app:app", "-b", "127.0.0.1:70000"], {}, "out of range"),
        ([], {}, "no app given"),
        (["not a module"], {}, "module:attr"),
        (["app:app", "--title", "../etc"], {}, "title '../etc'"),
        (["app:app", "--redis", "http://user:pw@host/"], {}, "is not a Redis URL"),
        (["app:app", "--log-level", "loud"], {}, "loud"),
        (["app:app", "--chdir", "/nonexistent/dir"], {}, "is not a directory"),
    ],
)
def test_bad_input_exits_2_with_one_error_line(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    full_env = _isolated_env(tmp_path)
    full_env.update(env)
    result = CliRunner().invoke(cli, ["start", *args], env=full_env)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "pw" not in result.stderr


def test_sticky_is_accepted(tmp_path: Path) -> None:
    assert _print_config(tmp_path, ["--sticky", "app:app"])["app"] == "app:app"
    help_text = CliRunner().invoke(cli, ["start", "--help"]).stdout
    assert "only mode" in help_text and "SIOCTL_WORKERS" in help_text


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "sioctl" in result.stdout




def test_listen_urls_https_with_certificate(tmp_path: Path) -> None:
    conf = tmp_path / "tls.conf.py"
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    conf.write_text(f"certfile = {cert!r}\nkeyfile = {key!r}\n")
    settings = config.build_settings(
        {"app": "a:b", "bind": ("[::1]:7443",)}, config.load_config_file(str(conf)),
        cwd=str(tmp_path), environ={}, cpu_count=2,
    )
    assert config.listen_urls(settings) == ["https://[::1]:7443"]


# --- run directories -------------------------------------------------------------------------


def test_default_run_base() -> None:
    assert rundir.default_base({"XDG_RUNTIME_DIR": "/run/user/1000"}) == "/run/user/1000/sioctl"
    assert rundir.default_base({"HOME": "/home/ann"}) == "/home/ann/.sioctl/run"
    assert rundir.resolve_base("relative", {}) == os.path.abspath("relative")


def test_known_titles_and_pidfile(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "master.pid").write_text("123\n")
    (tmp_path / "b").mkdir()  # no run files: not a cluster
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "control.sock").write_text("")
    assert rundir.known_titles(str(tmp_path)) == ["a", "c"]
    assert rundir.known_titles(str(tmp_path / "missing")) == []
    assert rundir.read_pidfile(str(tmp_path / "a" / "master.pid")) == 123
    (tmp_path / "junk.pid").write_text("not a pid")
    assert rundir.read_pidfile(str(tmp_path / "junk.pid")) is None


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stop_cleans_up_a_stale_cluster(tmp_path: Path) -> None:
    base = tmp_path / "run"
    (base / "old").mkdir(parents=True)
    (base / "old" / "control.sock").write_text("")
    (base / "old" / "master.pid").write_text(f"{_dead_pid()}\n")
    env = _isolated_env(tmp_path)
    result = CliRunner().invoke(cli, ["stop", "--title", "old"], env=env)
    assert result.exit_code == 1
    assert "removed stale control.sock and master.pid of 'old'" in result.stderr
    assert not (base / "old" / "control.sock").exists()
    result = CliRunner().invoke(cli, ["stop"], env=env)
    assert result.exit_code == 1
    assert result.stderr.strip() == "sioctl: no sioctl cluster is running"


def test_stop_and_status_of_unknown_title(tmp_path: Path) -> None:
    env = _isolated_env(tmp_path)
    for command in ("stop", "status"):
        result = CliRunner().invoke(cli, [command, "--title", "ghost"], env=env)
        assert result.exit_code == 1
        assert f"no sioctl cluster titled 'ghost' under {tmp_path / 'run'}" in result.stderr


def test_stop_pidfile_with_dead_pid(tmp_path: Path) -> None:
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{_dead_pid()}")
    result = CliRunner().invoke(cli, ["stop", "--pidfile", str(pidfile)])
    assert result.exit_code == 1
    assert "removed stale pidfile" in result.stderr
    assert not pidfile.exists()


class _MasterStandIn:
    """A real control server answering like a master, for a process that plays the master."""

    def __init__(self, path: str, title: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        self.title = title
        self.server = control.ControlServer(path, self.handle)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def handle(self, command: dict) -> dict:
        if command.get("cmd") == "stop":
            self.proc.terminate()
            return {"ok": True}
        now = time.time()
        return {
            "title": self.title, "pid": self.proc.pid, "started_at": now - 192,
            "binds": ["http://127.0.0.1:7001"], "redis": "in-memory", "state": "running",
            "slots": [{"slot": 0, "pid": 4242, "state": "ready", "started_at": now - 65,
                       "restarts": 1, "connections": 3, "sessions": 2, "pending": 0,
                       "refused": 5}],
        }

    def serve(self) -> None:
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.server.sock, selectors.EVENT_READ, None)
            while not self.done.is_set():
                for key, _ in sel.select(0.1):
                    if key.data is None:
                        conn = self.server.accept()
                        if conn is not None:
                            sel.register(conn, selectors.EVENT_READ, conn)
                    elif not self.server.read(key.data):
                        sel.unregister(key.data)
                        self.server.forget(key.data)

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.server.close()
        self.proc.kill()
        self.proc.wait()


def test_status_and_stop_through_the_control_socket(tmp_path: Path) -> None:
    cluster = tmp_path / "run" / "chat"
    cluster.mkdir(parents=True, mode=0o700)
    master = _MasterStandIn(str(cluster / "control.sock"), "chat")
    env = _isolated_env(tmp_path)
    try:
        result = CliRunner().invoke(cli, ["status"], env=env)
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0] == f"chat: master pid {master.proc.pid}, up 3m12s, running"
        assert lines[3].split() == list(status.COLUMNS)
        assert lines[4].split() == ["0", "4242", "ready", "1m05s", "1", "3", "2", "0", "5",
                                    "-", "-", "-", "-"]

        result = CliRunner().invoke(cli, ["status", "--title", "chat", "--json"], env=env)
        assert json.loads(result.stdout)["slots"][0]["pid"] == 4242

        result = CliRunner().invoke(cli, ["stop", "--timeout", "20"], env=env)
        assert result.exit_code == 0, result.output
        assert f"sioctl: chat stopped (pid {master.proc.pid})" in result.stderr
        assert master.proc.poll() is not None
    finally:
        master.close()


# --- status rendering ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0, "0s"), (59.9, "59s"), (192, "3m12s"), (3600, "1h00m"),
     (7500, "2h05m"), (3 * 86400 + 4 * 3600 + 5, "3d04h")],
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert status.human_duration(seconds) == text


def test_render_slot_without_process() -> None:
    reply = {"title": "t", "pid": 1, "started_at": 100.0, "state": "booting", "binds": [],
             "redis": "in-memory",
             "slots": [{"slot": 1, "pid": None, "state": "backoff", "started_at": None,
                        "restarts": 4, "connections": 0, "sessions": 0, "pending": 7}]}
    lines = status.render(reply, now=110.0).splitlines()
    assert lines[0] == "t: master pid 1, up 10s, booting"
    assert lines[-1].split() == ["1", "-", "backoff", "-", "4", "0", "0", "7", "-",
                                 "-", "-", "-", "-"]


def test_render_shows_the_recovery_figures_when_recovery_is_on() -> None:
    messaging = {"subscribed": True, "queued": 0, "published": 12, "dropped": 0}
    reply = {"title": "t", "pid": 1, "started_at": 100.0, "state": "running", "binds": [],
             "slots": [{"slot": 0, "pid": 5, "state": "ready", "started_at": 100.0,
                        "restarts": 0, "connections": 3, "sessions": 3, "pending": 0,
                        "refused": 0, "messaging": {**messaging, "recovery": {
                            "attempted": 4, "recovered": 3, "expired": 1, "sessions": 3}}},
                       {"slot": 1, "pid": None, "state": "backoff", "started_at": None,
                        "restarts": 1}]}
    lines = status.render(reply, now=110.0).splitlines()
    assert lines[-3].split()[-2:] == ["RECOVERED", "EXPIRED"]
    assert lines[-2].split()[-6:] == ["ok", "0", "12", "0", "3/4", "1"]
    assert lines[-1].split()[-2:] == ["-", "-"]
    # Off: no recovery columns.
    del reply["slots"][0]["messaging"]["recovery"]
    assert "RECOVERED" not in status.render(reply, now=110.0)


# --- daemon handshake ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "line"),
    [(b"ready\n", "ready"), (b"error: cannot load app\n", "error: cannot load app"),
     (b"", None), (b"partial", "partial")],
)
def test_read_line_from_the_ready_pipe(written: bytes, line: str | None) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, written)
    os.close(write_end)
    try:
        assert daemon.read_line(read_end, time.monotonic() + 10) == line
    finally:
        os.close(read_end)


def test_read_line_times_out() -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(TimeoutError):
            daemon.read_line(read_end, time.monotonic() + 0.2)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_daemon_log_path_and_command(tmp_path: Path) -> None:
    settings = config.build_settings({"app": "a:b", "run_dir": str(tmp_path)}, config.FileConfig(),
                                     cwd=str(tmp_path), environ={}, cpu_count=2)
    assert daemon.log_path(settings) == str(tmp_path / "sioctl-7001" / "sioctl.log")
    argv = daemon.command(7)
    assert argv[1:] == ["-m", "sioctl.cluster", "--ready-fd", "7"]
    assert json.loads(daemon.child_environ(settings, {})["SIOCTL_SETTINGS"])["app"] == "a:b"
    settings.errorlog = str(tmp_path / "err.log")
    assert daemon.log_path(settings) == str(tmp_path / "err.log")


# --- dev -------------------------------------------------------------------------------------


def test_dev_settings_and_children(tmp_path: Path) -> None:
    one = dev.dev_settings(app="a:b", bind="127.0.0.1:7005", workers=1, redis=None,
                           redis_channel=None, env_name="local", run_dir=str(tmp_path),
                           cwd=str(tmp_path), environ={})
    assert (one.workers, one.redis_url, one.env, one.loglevel) == (1, None, "local", "debug")
    assert dev.child_command(one)[1:] == ["-m", "sioctl.worker", "--listen", "127.0.0.1:7005"]
    child_env = daemon.child_environ(one, {"PATH": "/bin"})
    assert json.loads(child_env["SIOCTL_SETTINGS"])["app"] == "a:b"
    assert child_env["SIOCTL_ENV"] == "local"
    many = dev.dev_settings(app="a:b", bind="127.0.0.1:7005", workers=3, redis=None,
                            redis_channel=None, env_name="local", run_dir=str(tmp_path),
                            cwd=str(tmp_path), environ={})
    assert dev.child_command(many)[1:] == ["-m", "sioctl.cluster"]


def test_reloader_sees_changes_and_skips_other_peoples_code(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    for skipped in (".git", "node_modules", "__pycache__", "myenv/lib/site-packages"):
        (tmp_path / skipped).mkdir(parents=True)
        (tmp_path / skipped / "x.py").write_text("")
    (tmp_path / "myenv" / "pyvenv.cfg").write_text("")
    before = reloader.snapshot(str(tmp_path))
    assert sorted(before) == [str(tmp_path / "app.py"), str(tmp_path / "pkg" / "mod.py")]

    os.utime(tmp_path / "app.py", (1, 1))
    (tmp_path / "new.py").write_text("")
    (tmp_path / "pkg" / "mod.py").unlink()
    after = reloader.snapshot(str(tmp_path))
    assert reloader.changes(before, after) == [
        str(tmp_path / "app.py"), str(tmp_path / "new.py"), str(tmp_path / "pkg" / "mod.py")
    ]
    assert reloader.changes(after, reloader.snapshot(str(tmp_path))) == []


def test_supervise_without_reload_returns_the_child_status(tmp_path: Path) -> None:
    code = reloader.supervise([sys.executable, "-c", "raise SystemExit(3)"], env=dict(os.environ),
                              cwd=str(tmp_path), reload=False, stop_timeout=5, log=print,
                              poll_interval=0.05)
    assert code == 3


def test_stopping_probe_of_a_dir_without_run_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert stopping.probe(str(tmp_path), "empty") is None


# --- app directories -------------------------------------------------------------------------


def _app_dir(root: Path, default: str = "", **env_files: str) -> Path:
    """An app directory under ``root``: config_default.py holding ``default``, plus
    config_<env>.py files from ``env_files``."""
    (root / "config").mkdir(parents=True)
    (root / "config" / "config_default.py").write_text(default)
    for env_name, text in env_files.items():
        (root / "config" / f"config_{env_name}.py").write_text(text)
    return root


def test_app_dir_argument_resolves_to_absolute_path_with_prod_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app_dir(tmp_path / "proj", "keys = ['k']\n",
                   prod="io = {'redis': {'host': '127.0.0.2', 'port': 6390, 'password': 's3'}}\n")
    monkeypatch.chdir(tmp_path)
    shown = _print_config(tmp_path, ["proj"])
    assert (shown["app"], shown["chdir"], shown["env"]) == (str(app), str(app), "prod")
    # io.redis of config_prod.py is the Redis URL, its password masked.
    assert shown["redis_url"] == "redis://:***@127.0.0.2:6390/0"
    # --redis, then SIOCTL_REDIS, beat the app's config.
    assert _print_config(tmp_path, ["./proj", "--redis", "redis://127.0.0.3:1/0"],
                         {"SIOCTL_REDIS": "redis://127.0.0.4:1/0"})["redis_url"] == \
        "redis://127.0.0.3:1/0"
    assert _print_config(tmp_path, [str(app)], {"SIOCTL_REDIS": "redis://127.0.0.4:1/0"})[
        "redis_url"] == "redis://127.0.0.4:1/0"
    # --env (or SIOCTL_ENV) picks another config file: config_local.py does not exist here.
    local = _print_config(tmp_path, ["proj"], {"SIOCTL_ENV": "local"})
    assert (local["env"], local["redis_url"]) == ("local", None)


def test_current_directory_is_the_default_app(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app_dir(tmp_path / "proj", "io = {'redis': 'redis://127.0.0.5:6379/2'}\n")
    monkeypatch.chdir(app)
    shown = _print_config(tmp_path, [])
    assert (shown["app"], shown["chdir"], shown["env"]) == (str(app), str(app), "prod")
    assert shown["redis_url"] == "redis://127.0.0.5:6379/2"
    # An explicit --chdir stays the working directory; the app still loads from its own path.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = _print_config(tmp_path, [str(app), "--chdir", str(elsewhere)])
    assert (moved["app"], moved["chdir"]) == (str(app), str(elsewhere))
    # With no APP, --chdir names the directory to look for an app in.
    monkeypatch.chdir(elsewhere)
    assert _print_config(tmp_path, ["--chdir", str(app)])["app"] == str(app)


def test_module_reference_still_works_beside_a_package_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A package directory named like the module is no app directory: the name stays a module.
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path)
    shown = _print_config(tmp_path, ["mypkg"])
    assert (shown["app"], shown["chdir"], shown["env"]) == ("mypkg", str(tmp_path), None)
    shown = _print_config(tmp_path, ["mypkg.app:sio"])
    assert (shown["app"], shown["env"]) == ("mypkg.app:sio", None)


@pytest.mark.parametrize(
    ("app", "message"),
    [("./missing", "'./missing' is not a directory"), ("plain/", "is not an app directory")],
)
def test_a_path_that_is_no_app_dir_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app: str, message: str
) -> None:
    (tmp_path / "plain").mkdir()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["start", app, "--print-config"],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0]


def test_app_config_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    app = _app_dir(tmp_path / "proj", "io = {'init': {'ping_interval': 25}}\n",
                   prod="io = {'init': {'ping_interval': 'fast'}}\n")
    result = CliRunner().invoke(cli, ["start", str(app), "--print-config"],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "sioctl: error: config/config_prod.py: io.init.ping_interval: expected a number of "
        "seconds, got str 'fast'"
    ]
    # dev reads config_local.py instead, which is fine here.
    settings = dev.dev_settings(app=str(app), bind="127.0.0.1:7005", workers=1, redis=None,
                                redis_channel=None, env_name="local", run_dir=str(tmp_path),
                                cwd=str(tmp_path), environ={})
    assert (settings.app, settings.chdir, settings.env) == (str(app), str(app), "local")


def test_dev_resolves_app_dir_and_honours_sioctl_env(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app_dir(tmp_path / "proj", "", staging="keys = 3\n")
    monkeypatch.chdir(app)
    settings = dev.dev_settings(app=None, bind="127.0.0.1:7005", workers=1, redis=None,
                                redis_channel=None, env_name="local", run_dir=str(tmp_path),
                                cwd=str(app), environ={})
    assert (settings.app, settings.chdir) == (str(app), str(app))
    env = _isolated_env(tmp_path)
    env["SIOCTL_ENV"] = "staging"
    result = CliRunner().invoke(cli, ["dev", "--no-reload"], env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("sioctl: error: config/config_staging.py: keys: ")


def test_stop_waits_for_the_clusters_own_graceful_timeout() -> None:
    from sioctl.cli.stopping import DEFAULT_STOP_TIMEOUT, Found, stop_timeout

    assert stop_timeout(Found("t", {"graceful_timeout": 60.0}, 1)) == 65.0
    assert stop_timeout(Found("t", {"state": "running"}, 1)) == DEFAULT_STOP_TIMEOUT
    assert stop_timeout(Found("t", None, 1)) == DEFAULT_STOP_TIMEOUT


def test_allow_eio3_from_flag_env_and_app_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Off by default; --allow-eio3 or SIOCTL_ALLOW_EIO3 turns it on.
    assert _print_config(tmp_path, ["app:app"])["allow_eio3"] is False
    assert _print_config(tmp_path, ["app:app", "--allow-eio3"])["allow_eio3"] is True
    assert _print_config(tmp_path, ["app:app"], {"SIOCTL_ALLOW_EIO3": "1"})["allow_eio3"] is True
    # An app directory's io.init.allow_eio3 applies unless the command line says otherwise.
    _app_dir(tmp_path / "proj", "io = {'init': {'allow_eio3': True}}\n")
    monkeypatch.chdir(tmp_path)
    assert _print_config(tmp_path, ["proj"])["allow_eio3"] is True
    assert _print_config(tmp_path, ["proj", "--no-allow-eio3"])["allow_eio3"] is False
    settings = dev.dev_settings(app="proj", bind="127.0.0.1:7001", workers=1, redis=None,
                                redis_channel=None, env_name="local", run_dir=None,
                                cwd=str(tmp_path), environ={}, allow_eio3=None)
    assert settings.allow_eio3 is True


def test_allow_eio3_in_app_config_must_be_a_bool(tmp_path: Path) -> None:
    _app_dir(tmp_path / "proj", "io = {'init': {'allow_eio3': 'yes'}}\n")
    result = CliRunner().invoke(cli, ["start", "--print-config", str(tmp_path / "proj")],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 1
    assert "io.init.allow_eio3" in result.output and "True or False" in result.output


def test_ws_per_message_deflate_from_flag_env_and_app_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Off by default, as the Node server's perMessageDeflate; the flag or the variable turns
    # it on, and an app directory's io.init.per_message_deflate (egg's perMessageDeflate)
    # applies unless the command line says otherwise.
    key = "ws_per_message_deflate"
    assert _print_config(tmp_path, ["app:app"])[key] is False
    assert _print_config(tmp_path, ["app:app", "--ws-per-message-deflate"])[key] is True
    assert _print_config(tmp_path, ["app:app"], {"SIOCTL_WS_PER_MESSAGE_DEFLATE": "1"})[key] \
        is True
    _app_dir(tmp_path / "proj", "io = {'init': {'perMessageDeflate': {'threshold': 1024}}}\n")
    monkeypatch.chdir(tmp_path)
    assert _print_config(tmp_path, ["proj"])[key] is True
    assert _print_config(tmp_path, ["proj", "--no-ws-per-message-deflate"])[key] is False
    settings = dev.dev_settings(app="proj", bind="127.0.0.1:7001", workers=1, redis=None,
                                redis_channel=None, env_name="local", run_dir=None,
                                cwd=str(tmp_path), environ={}, ws_per_message_deflate=None)
    assert settings.ws_per_message_deflate is True
