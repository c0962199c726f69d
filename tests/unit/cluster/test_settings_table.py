"""The settings table: every setting declared once, and never half-added.

A setting is a field of ``Settings`` with its spec (cluster/settings.py). These tests hold the
pieces built from it together: the ``start`` options and their ``SIOCTL_*`` variables, the
defaults a bare ``sioctl start`` resolves to, the bounds checked on config-file values, the
gunicorn keys, and the README, which must name every flag.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from gunicorn.config import make_settings

from sioctl.cli import config, stopping
from sioctl.cli.main import cli
from sioctl.cluster.setting_spec import Spec, setting, specs_of
from sioctl.cluster.settings import SPECS, TABLE, Settings
from sioctl.worker import protocol
from tests.support.paths import REPO_ROOT

README = REPO_ROOT / "README.md"
# Options of `start` that are not settings.
START_ONLY = {"sticky", "config_file", "print_config", "check_config", "port"}
# Settings whose command-line default is computed rather than the Settings default.
COMPUTED = {
    "app": "the APP argument, SIOCTL_APP or the current app directory",
    "workers": "the number of CPUs",
    "title": "sioctl-PORT",
    "run_dir": "RUN_DIR_BASE/TITLE",
    "chdir": "the app directory or the current directory",
    "proc_name": "the title",
}
# Flags the README does not describe yet; the README text for them is in the settings report.
# Empty this set when it lands: a flag added later must come with its README line.
NOT_IN_README_YET: set[str] = set()


def _start_options() -> dict[str, click.Parameter]:
    return {param.name or "": param for param in cli.commands["start"].params}


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    env = {k: "" for k in os.environ if k.startswith("SIOCTL_")}
    env["SIOCTL_RUN_DIR"] = str(tmp_path / "run")
    return env


def test_every_settings_field_is_a_row_of_the_table() -> None:
    assert [spec.name for spec in TABLE] == [f.name for f in dataclasses.fields(Settings)]


def test_a_field_declared_without_its_spec_is_refused() -> None:
    @dataclasses.dataclass
    class HalfAdded:
        declared: int = setting(1, flags=("--declared",), help="A setting.")
        bare: int = 2

    with pytest.raises(TypeError, match="HalfAdded.bare is declared without setting"):
        specs_of(HalfAdded)


@pytest.mark.parametrize("spec", TABLE, ids=lambda spec: spec.name)
def test_each_setting_has_a_flag_or_says_why_not(spec: Spec) -> None:
    if spec.flags:
        assert not spec.no_flag, f"{spec.name}: has a flag and a reason not to"
        assert spec.help, f"{spec.name}: no help text"
        assert spec.env == "SIOCTL_" + spec.option.upper()
    else:
        assert spec.no_flag, f"{spec.name}: no flag and no reason why"
        # Without a flag only the APP argument reads a variable.
        assert spec.env is None or spec.name == "app"


@pytest.mark.parametrize("spec", [s for s in TABLE if s.flags], ids=lambda spec: spec.name)
def test_start_has_the_option_of_each_flagged_setting(spec: Spec) -> None:
    param = _start_options().get(spec.option)
    assert isinstance(param, click.Option), f"start has no option for {spec.name}"
    assert param.envvar == spec.env and param.show_envvar
    assert param.help == spec.help_text
    assert spec.long_flag in param.opts
    # None when not given: the config file's value or the default is chosen later.
    assert param.to_info_dict()["default"] is None


def test_start_options_are_settings_or_named_exceptions() -> None:
    options = set(_start_options())
    settings = {spec.option for spec in TABLE if spec.flags} | {"app"}
    assert options - settings == START_ONLY


def test_help_texts_state_the_table_default() -> None:
    for spec in TABLE:
        if spec.flags and spec.kind in (int, float) and spec.name not in COMPUTED:
            assert f"default {spec.default:g}" in spec.help_text, spec.name


def test_cli_defaults_are_the_settings_defaults(tmp_path: Path) -> None:
    """A bare ``sioctl start APP`` resolves every setting to its Settings default."""
    result = CliRunner().invoke(cli, ["start", "--print-config", "app:app"],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.stdout)
    defaults = dataclasses.asdict(Settings(app="app:app"))
    differing = {k: (resolved[k], v) for k, v in defaults.items()
                 if resolved[k] != v and k not in COMPUTED}
    assert differing == {}


def test_other_copies_of_defaults_read_the_table() -> None:
    assert protocol.DEFAULT_CONNECT_TIMEOUT == SPECS["connect_timeout"].default
    assert stopping.DEFAULT_STOP_TIMEOUT == (
        SPECS["graceful_timeout"].default + stopping.STOP_SLACK
    )


@pytest.mark.parametrize("spec", [s for s in TABLE if s.minimum is not None],
                         ids=lambda spec: spec.name)
def test_values_below_a_bound_are_refused_from_options_and_config_files(spec: Spec) -> None:
    if spec.name == "workers":
        message = "is not a number of workers >= 1"
    else:
        message = "is below"
    below: Any = spec.kind(spec.minimum - 1)
    sources: list[tuple[dict[str, Any], config.FileConfig]] = [
        ({"app": "a:b", spec.option: below}, config.FileConfig()),
    ]
    if spec.gunicorn:
        sources.append(({"app": "a:b"}, config.FileConfig(values={spec.gunicorn: below})))
    for options, file_config in sources:
        with pytest.raises(click.BadParameter) as info:
            config.build_settings(options, file_config, cwd="/", environ={}, cpu_count=1)
        assert message in info.value.message
        assert info.value.param_hint == config.hint(spec)


# A value each check refuses: (as the option gives it, as a config file gives it or None).
REFUSED = {
    "binds": (("127.0.0.1:http",), ["[::1:7001"]),
    "metrics_bind": ("unix:/tmp/m.sock", None),
    "redis_url": ("http://user:pw@host/", None),
    "forwarded_allow_ips": ("10.0.0.0/8,proxy", ["10.0.0.1", "proxy"]),
    "raw_env": (("NOEQUALS",), ["A=1", "NOEQUALS"]),
}


def test_every_check_has_a_refused_value_here() -> None:
    assert {spec.name for spec in TABLE if spec.check} == set(REFUSED)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_checked_values_are_refused_from_options_and_config_files(name: str) -> None:
    spec = SPECS[name]
    option_value, file_value = REFUSED[name]
    sources = [({"app": "a:b", spec.option: option_value}, config.FileConfig())]
    if file_value is not None:
        assert spec.gunicorn
        sources.append(({"app": "a:b"}, config.FileConfig(values={spec.gunicorn: file_value})))
    for options, file_config in sources:
        with pytest.raises(click.BadParameter) as info:
            config.build_settings(options, file_config, cwd="/", environ={}, cpu_count=1)
        assert info.value.param_hint == config.hint(spec)
        assert "\n" not in info.value.message and "pw" not in info.value.message


def test_choices_are_checked_on_config_file_values() -> None:
    for spec in TABLE:
        if not spec.choices:
            continue
        options = {"app": "a:b", spec.option: "nonsense"}
        with pytest.raises(click.BadParameter, match="'nonsense' is not one of"):
            config.build_settings(options, config.FileConfig(), cwd="/", environ={},
                                  cpu_count=1)


@pytest.mark.parametrize(
    ("written", "on"),
    [("False", False), ("'off'", False), ("True", True), ("'v1'", True), ("'v2'", True),
     ("'auto'", True)],
)
def test_proxy_protocol_from_a_config_file(tmp_path: Path, written: str, on: bool) -> None:
    # gunicorn holds a mode string; "off" (what False becomes) must not turn the headers on.
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"proxy_protocol = {written}\n")
    result = CliRunner().invoke(cli, ["start", "--print-config", "-c", str(conf), "app:app"],
                                env=_isolated_env(tmp_path))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["proxy_protocol"] is on


def test_gunicorn_keys_are_gunicorn_settings() -> None:
    known = make_settings()
    for spec in TABLE:
        if spec.gunicorn:
            assert spec.gunicorn in known, spec.name
            if not spec.flags and spec.name not in COMPUTED:
                # Only a config file sets it: unset, it is what gunicorn would use.
                assert spec.default == known[spec.gunicorn].default, spec.name
    assert sorted(config.APPLICABLE) == sorted(s.gunicorn for s in TABLE if s.gunicorn)


def _readme_flags() -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", README.read_text()))


def test_readme_names_every_flag() -> None:
    mentioned = _readme_flags()
    missing = set()
    for name, command in cli.commands.items():
        for param in command.params:
            if not isinstance(param, click.Option) or param.name == "help":
                continue
            names = [*param.opts, *param.secondary_opts]
            if not any(flag in mentioned for flag in names):
                missing.add(max(names, key=len) if name == "start" else f"{name} {names}")
    assert missing <= NOT_IN_README_YET, f"flags the README does not name: {missing}"
