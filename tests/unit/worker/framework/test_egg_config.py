"""Config written the egg-socket.io way: egg's names and engine.io's units beside ours, the
milliseconds check on seconds settings (app config, command line, gunicorn file), a missing
config_{env}.py and names a gunicorn file sets that gunicorn does not know.

The whole egg-style app runs on a real cluster in tests/e2e/test_egg_migration.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from sioctl.cli.main import cli
from sioctl.worker.framework.config import ConfigError, load_config
from tests.support.paths import APPS_DIR

EGG_APP = APPS_DIR / "eggapp"


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    env = {k: "" for k in os.environ if k.startswith("SIOCTL_")}
    env["SIOCTL_RUN_DIR"] = str(tmp_path / "run")
    return env


def _app_dir(root: Path, default: str, **env_files: str) -> Path:
    (root / "config").mkdir(parents=True)
    (root / "config" / "config_default.py").write_text(default)
    for env_name, text in env_files.items():
        (root / "config" / f"config_{env_name}.py").write_text(text)
    return root


def _config_error(root: Path, env: str = "prod") -> str:
    with pytest.raises(ConfigError) as info:
        load_config(str(root), env)
    return str(info.value)


def test_the_egg_app_reads_as_sioctl_names_and_units() -> None:
    config = load_config(str(EGG_APP), "prod")
    # pingInterval / pingTimeout are engine.io's milliseconds; ours are seconds.
    assert config.init["ping_interval"] == 25
    assert config.init["ping_timeout"] == 20
    assert config.init["max_http_buffer_size"] == 1_000_000
    assert config.init["allow_eio3"] is True
    assert config.init["cors"] == "*"
    assert "wsEngine" not in config.init
    assert config.namespaces["/"].connection_middleware == ["auth"]
    assert config.namespaces["/"].packet_middleware == ["filter"]
    assert config.namespaces["/chat"].connection_middleware == []
    assert config.generate_id is not None
    assert set(config.socket_config) == {"signatureApp"}
    # Each egg name is named once, with the key it became.
    notes = "\n".join(config.notes)
    for line in (
        "config/config_default.py: socketConfig is egg-socket.io's name; read as socket_config",
        "config/config_default.py: io.generateId is egg-socket.io's name; read as "
        "io.generate_id",
        "config/config_default.py: io.init.pingInterval is engine.io's name, in milliseconds; "
        "read as io.init.ping_interval = 25 (seconds)",
        "config/config_default.py: io.namespace./.connectionMiddleware is egg-socket.io's "
        "name; read as io.namespace./.connection_middleware",
        "config/config_default.py: io.init.wsEngine (an engine.io option) is ignored: "
        "websockets are served by python-engineio itself",
    ):
        assert line in config.notes, notes
    assert len(config.notes) == len(set(config.notes))


def test_auth_pass_is_the_redis_password(tmp_path: Path) -> None:
    root = _app_dir(tmp_path / "a", "io = {'redis': {'host': '127.0.0.2', 'port': 6390, "
                    "'auth_pass': 's3', 'db': 1}}\n")
    config = load_config(str(root), "prod")
    assert config.redis_url == "redis://:s3@127.0.0.2:6390/1"
    assert "io.redis.auth_pass is egg-socket.io's name; read as io.redis.password" in \
        "\n".join(config.notes)


@pytest.mark.parametrize(
    ("init", "expected"),
    [
        ({"cors": {"origin": "https://a.example", "credentials": True}}, "https://a.example"),
        ({"cors": {"origin": True}}, "*"),
        ({"cors": {"origin": ["https://a.example", "https://b.example"]}},
         ["https://a.example", "https://b.example"]),
        ({"origins": "*:*"}, "*"),
        ({"origins": ["https://a.example:443"]}, ["https://a.example:443"]),
        ({"cors": "https://c.example"}, "https://c.example"),
    ],
)
def test_engine_io_cors_and_socket_io_origins(tmp_path: Path, init: dict, expected: object
                                              ) -> None:
    root = _app_dir(tmp_path / "a", f"io = {{'init': {init!r}}}\n")
    assert load_config(str(root), "prod").init["cors"] == expected


@pytest.mark.parametrize(("given", "expected"), [
    (False, False), (True, True), ({"threshold": 1024}, True),
])
def test_engine_io_per_message_deflate_is_the_websocket_compression_setting(
        tmp_path: Path, given: object, expected: bool) -> None:
    # engine.io's perMessageDeflate (an options object means on) is read by the CLI as
    # --ws-per-message-deflate (cli/config.py).
    root = _app_dir(tmp_path / "a", f"io = {{'init': {{'perMessageDeflate': {given!r}}}}}\n")
    assert load_config(str(root), "prod").init == {"per_message_deflate": expected}


def test_engine_io_options_without_a_counterpart_are_ignored_saying_why(tmp_path: Path
                                                                        ) -> None:
    root = _app_dir(tmp_path / "a", "io = {'init': {'wsEngine': 'uws', "
                    "'handlePreflightRequest': lambda req, res: None, 'connectTimeout': 45000, "
                    "'ping_interval': 20}}\n")
    config = load_config(str(root), "prod")
    assert config.init == {"ping_interval": 20}
    notes = "\n".join(config.notes)
    assert "io.init.wsEngine (an engine.io option) is ignored" in notes
    assert "io.init.handlePreflightRequest (an engine.io option) is ignored" in notes
    assert "io.init.connectTimeout (an engine.io option) is ignored: use --connect-timeout" \
        in notes


def test_cookie_false_is_no_cookie(tmp_path: Path) -> None:
    root = _app_dir(tmp_path / "a", "io = {'init': {'cookie': False}}\n")
    assert load_config(str(root), "prod").init["cookie"] is None


@pytest.mark.parametrize(
    ("default", "message"),
    [
        ("io = {'init': {'pingInterval': 25000, 'ping_interval': 25}}\n",
         "config/config_default.py: io.init: both pingInterval and ping_interval are set"),
        ("io = {'generateId': None, 'generate_id': None}\n",
         "config/config_default.py: io: both generateId and generate_id are set"),
        ("socketConfig = {}\nsocket_config = {}\n",
         "config/config_default.py: (top level): both socketConfig and socket_config are set"),
        ("io = {'namespace': {'/': {'packetMiddleware': [], 'packet_middleware': []}}}\n",
         "io.namespace./: both packetMiddleware and packet_middleware are set"),
        ("io = {'redis': {'auth_pass': 'a', 'password': 'b'}}\n",
         "io.redis: both auth_pass and password are set"),
        ("io = {'init': {'origins': '*:*', 'cors': True}}\n",
         "io.init: both origins and cors are set"),
        ("io = {'init': {'ping_interval': 25000}}\n",
         "config/config_default.py: io.init.ping_interval: seconds; 25000 looks like "
         "milliseconds — use 25 or pingInterval"),
        ("io = {'init': {'ping_timeout': 5000.0}}\n",
         "io.init.ping_timeout: seconds; 5000 looks like milliseconds — use 5 or pingTimeout"),
        ("io = {'init': {'pingInterval': 'fast'}}\n",
         "io.init.pingInterval: expected a number of milliseconds above 0, got 'fast'"),
        ("io = {'init': {'allowRequest': lambda req, cb: cb(None, True)}}\n",
         "io.init.allowRequest: not supported; refuse handshakes in a connection middleware"),
        ("io = {'init': {'origins': 'a.example:*'}}\n",
         "io.init.origins: only '*:*' or full origins"),
    ],
)
def test_mistakes_name_the_file_and_both_keys(tmp_path: Path, default: str, message: str
                                              ) -> None:
    assert message in _config_error(_app_dir(tmp_path / "a", default))


def test_a_converted_value_is_checked_like_ours(tmp_path: Path) -> None:
    # The same checks as sioctl's own names: a wrong type still names the key it became.
    root = _app_dir(tmp_path / "a", "io = {'init': {'maxHttpBufferSize': '1mb'}}\n")
    assert _config_error(root) == ("config/config_default.py: io.init.max_http_buffer_size: "
                                   "expected a number of bytes, got str '1mb'")


def test_files_may_mix_spellings(tmp_path: Path) -> None:
    # One file in egg's names, the other in ours: merged as one setting, the env file winning.
    root = _app_dir(tmp_path / "a", "io = {'init': {'pingInterval': 10000}}\n",
                    prod="io = {'init': {'ping_interval': 3}}\n")
    assert load_config(str(root), "prod").init["ping_interval"] == 3


def test_a_missing_env_file_is_said_once_by_the_cli(tmp_path: Path) -> None:
    root = _app_dir(tmp_path / "a", "keys = 'k'\n")
    result = CliRunner().invoke(cli, ["start", "--print-config", str(root), "--env", "staging"],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["env"] == "staging"
    assert result.stderr.splitlines() == [
        "sioctl: config/config_staging.py does not exist: env 'staging' runs on "
        "config/config_default.py alone"
    ]
    # The envs start and dev use when none is named run on the defaults without a note, as on
    # egg; --env default reads config_default.py once.
    for env in ("prod", "local", "default"):
        assert load_config(str(root), env).notes == []
    result = CliRunner().invoke(cli, ["start", "--print-config", str(root)],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_the_cli_prints_each_note_once(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["start", "--print-config", str(EGG_APP)],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == len(set(lines)) == len(load_config(str(EGG_APP), "prod").notes)
    assert all(line.startswith("sioctl: config/config_") for line in lines)


# (flag, a value refused as milliseconds, the largest value taken as seconds): a ping, connect,
# keep-alive or header deadline of 1000 s or more is never meant; an hour of graceful draining
# or worker timeout is, so those two take everything under a day.
MILLIS_CASES = [
    ("--connect-timeout", 30000, 999), ("--keepalive", 30000, 999),
    ("--header-timeout", 30000, 999),
    ("--timeout", 86_400_000, 3600), ("--graceful-timeout", 86_400_000, 3600),
]


@pytest.mark.parametrize(("flag", "millis", "seconds"), MILLIS_CASES)
def test_milliseconds_on_the_command_line_are_refused(
    tmp_path: Path, flag: str, millis: int, seconds: int
) -> None:
    result = CliRunner().invoke(cli, ["start", "--print-config", "app:app", flag, str(millis)],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 2
    assert (f"'{flag}': seconds; {millis} looks like milliseconds — use {millis // 1000}"
            in result.stderr)
    # The same through the SIOCTL_* variable.
    env = {**_isolated_env(tmp_path),
           "SIOCTL_" + flag[2:].upper().replace("-", "_"): str(millis + 15000)}
    result = CliRunner().invoke(cli, ["start", "--print-config", "app:app"], env=env)
    assert f"{millis + 15000} looks like milliseconds — use {(millis + 15000) / 1000:g}" \
        in result.stderr
    result = CliRunner().invoke(cli, ["start", "--print-config", "app:app", flag, str(seconds)],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 0, result.output


def test_gunicorn_file_milliseconds_and_unknown_names(tmp_path: Path) -> None:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("import os\nfrom os.path import join\nworkers = 2\nport = 7001\n"
                    "sticky = True\nkeepalive = 30000\n")
    result = CliRunner().invoke(cli, ["start", "--print-config", "app:app", "-c", str(conf)],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 2
    assert "seconds; 30000 looks like milliseconds — use 30" in result.stderr
    conf.write_text("import os\nfrom os.path import join\nworkers = 2\nport = 7001\n"
                    "sticky = True\nthreads = 4\n")
    result = CliRunner().invoke(cli, ["start", "--print-config", "app:app", "-c", str(conf)],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "sioctl: ignoring gunicorn settings that do not apply: threads",
        "sioctl: not gunicorn settings, skipped: port, sticky",
    ]


# ------------------------------------------------------------------------- egg-session


def test_egg_session_maps_onto_sioctl_sessions(tmp_path: Path) -> None:
    # egg-session's defaults as an egg app writes them, but encrypt (below): the cookie's name
    # and maxAge in milliseconds mean something here; the options sioctl's cookies always
    # satisfy are read with a line each.
    root = _app_dir(tmp_path / "a", "session = {'key': 'EGG_SESS', 'maxAge': 24 * 3600 * 1000,"
                    " 'httpOnly': True, 'signed': True, 'sameSite': 'Lax', 'logValue': False,"
                    " 'encrypt': False}\n")
    config = load_config(str(root), "prod")
    assert (config.session_key, config.session_max_age) == ("EGG_SESS", 86400)
    notes = config.notes
    assert ("config/config_default.py: session.maxAge is egg-session's name, in milliseconds; "
            "read as session.max_age = 86400 (seconds)") in notes
    assert ("config/config_default.py: session.httpOnly is egg-session's option; True is what "
            "sioctl does: sioctl's session cookies are always HttpOnly") in notes
    assert len(notes) == 6 and len(set(notes)) == 6, notes


def test_egg_session_encrypt_needs_the_redis_store(tmp_path: Path) -> None:
    # egg encrypts cookie sessions by default; sioctl's are signed only, so encrypt is read
    # where the data stays on the server, and refused where the browser could read it.
    root = _app_dir(tmp_path / "a", "session = {'encrypt': True, 'store': 'redis', "
                    "'maxAge': 'session'}\n")
    config = load_config(str(root), "prod")
    assert (config.session_store, config.session_max_age) == ("redis", None)
    assert any("session.maxAge is egg-session's name; 'session'" in n for n in config.notes)
    refused = _config_error(_app_dir(tmp_path / "b", "session = {'encrypt': True}\n"))
    assert refused.startswith("config/config_default.py: session.encrypt: sioctl's cookie "
                              "sessions are signed, not encrypted")
    assert "session.store = 'redis'" in refused


@pytest.mark.parametrize(
    ("session", "message"),
    [
        ("{'httpOnly': False}", "session.httpOnly: False is not supported: sioctl's session "
         "cookies are always HttpOnly"),
        ("{'sameSite': 'none'}", "session.sameSite: 'none' is not supported"),
        ("{'renew': True}", "session.renew: egg-session's option has no meaning here: sioctl "
         "never re-issues a session cookie"),
        ("{'secure': True}", "session.secure: egg-session's option has no meaning here: pass "
         "secure=True to session_cookie_header()"),
        ("{'maxAge': 'a day'}", "session.maxAge: expected a number of milliseconds above 0"),
        ("{'maxAge': 1000, 'max_age': 1}", "session: both maxAge and max_age are set"),
        ("{'max_age': 86400000}", "session.max_age: seconds; 86400000 looks like milliseconds "
         "— use 86400 or maxAge"),
        ("{'encrypt': 'yes', 'store': 'redis'}", "session.encrypt: expected True or False"),
    ],
)
def test_egg_session_options_without_a_meaning_are_refused(tmp_path: Path, session: str,
                                                           message: str) -> None:
    assert message in _config_error(_app_dir(tmp_path / "a", f"session = {session}\n"))


def test_connection_state_recovery_in_both_spellings(tmp_path: Path) -> None:
    # socket.io's object, in milliseconds, with its defaults (2 min, middleware skipped).
    egg = _app_dir(tmp_path / "egg", "io = {'init': {'connectionStateRecovery': "
                   "{'maxDisconnectionDuration': 30000, 'skipMiddlewares': False}}}\n")
    config = load_config(str(egg), "prod")
    assert config.init["connection_state_recovery"] == {
        "max_disconnection_duration": 30, "skip_middlewares": False}
    assert "io.init.connectionStateRecovery is socket.io's name, in milliseconds" in \
        "\n".join(config.notes)
    empty = _app_dir(tmp_path / "empty", "io = {'init': {'connectionStateRecovery': {}}}\n")
    assert load_config(str(empty), "prod").init["connection_state_recovery"] == {
        "max_disconnection_duration": 120, "skip_middlewares": True}
    # Ours, in seconds; True means the defaults.
    ours = _app_dir(tmp_path / "ours", "io = {'init': {'connection_state_recovery': "
                    "{'max_disconnection_duration': 45}}}\n")
    assert load_config(str(ours), "prod").init["connection_state_recovery"] == {
        "max_disconnection_duration": 45, "skip_middlewares": True}
    on = _app_dir(tmp_path / "on", "io = {'init': {'connection_state_recovery': True}}\n")
    assert load_config(str(on), "prod").init["connection_state_recovery"] == {
        "max_disconnection_duration": 120.0, "skip_middlewares": True}


@pytest.mark.parametrize(("init", "message"), [
    ("{'connection_state_recovery': {'max_disconnection_duration': 'long'}}",
     "io.init.connection_state_recovery.max_disconnection_duration: expected a number"),
    ("{'connection_state_recovery': {'skip': True}}",
     "io.init.connection_state_recovery.skip: unknown config key"),
    ("{'connectionStateRecovery': {'maxDisconnectionDuration': 0}}",
     "io.init.connectionStateRecovery.maxDisconnectionDuration: expected a number of "
     "milliseconds above 0"),
    ("{'connectionStateRecovery': {}, 'connection_state_recovery': True}",
     "both connectionStateRecovery and connection_state_recovery are set"),
])
def test_connection_state_recovery_mistakes(tmp_path: Path, init: str, message: str) -> None:
    root = _app_dir(tmp_path / "a", f"io = {{'init': {init}}}\n")
    assert message in _config_error(root)


def test_the_cli_takes_the_recovery_window_from_the_app_dir(tmp_path: Path) -> None:
    root = _app_dir(tmp_path / "proj", "io = {'init': {'connectionStateRecovery': "
                    "{'maxDisconnectionDuration': 90000}}}\n")

    def printed(*args: str) -> object:
        result = CliRunner().invoke(cli, ["start", "--print-config", str(root), *args],
                                    env=_isolated_env(tmp_path))
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["connection_state_recovery"]

    assert printed() == 90
    # The command line wins.
    assert printed("--connection-state-recovery", "5") == 5
