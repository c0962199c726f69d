"""Click options built from the settings table (sioctl.cluster.settings.TABLE).

Each option takes its flags, type, bounds, metavar, help and ``SIOCTL_*`` variable from the
setting's spec, so a setting is declared in one place; a command that means something else by a
flag (``dev``'s single ``--bind`` with its own default) overrides click arguments by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from sioctl.cluster.setting_spec import ENV_PREFIX, Spec
from sioctl.cluster.settings import SPECS

F = TypeVar("F", bound=Callable[..., Any])


def env(name: str) -> str:
    return f"{ENV_PREFIX}{name}"


def option(*decls: str, envvar: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """click.option with the env variable shown in --help."""
    if envvar:
        kwargs.setdefault("show_envvar", True)
    return click.option(*decls, envvar=envvar, **kwargs)


def click_type(spec: Spec) -> click.ParamType | None:
    """The click type that converts and bounds the setting's value; None for plain text."""
    if spec.choices:
        return click.Choice(spec.choices, case_sensitive=not spec.ignore_case)
    if spec.kind is float:
        return click.FloatRange(min=spec.minimum)
    if spec.kind is int:
        return click.IntRange(min=spec.minimum)
    return None


def click_kwargs(spec: Spec) -> dict[str, Any]:
    """click.option's arguments for ``spec``; its value is None when not given (the config
    file's value or the default is then chosen in cli/config.py)."""
    kwargs: dict[str, Any] = {"envvar": spec.env, "help": spec.help_text}
    if spec.metavar:
        kwargs["metavar"] = spec.metavar
    if spec.multiple:
        kwargs["multiple"] = True
    if spec.kind is bool:
        # An on/off pair: None tells "not given" from an explicit --no-... .
        kwargs["default"] = None
    else:
        kind = click_type(spec)
        if kind is not None:
            kwargs["type"] = kind
    return kwargs


def setting_option(name: str, **overrides: Any) -> Callable[[F], F]:
    """The click option of the setting ``name`` (a Settings field); ``overrides`` replace
    click arguments (``envvar=None`` drops the variable)."""
    spec = SPECS[name]
    if not spec.flags:
        raise ValueError(f"setting {name!r} has no flag: {spec.no_flag}")
    kwargs = {**click_kwargs(spec), **overrides}
    return option(*spec.flags, **kwargs)


def setting_options(*names: str) -> Callable[[F], F]:
    """The options of several settings, shown in --help in the order given."""

    def decorate(command: F) -> F:
        for name in reversed(names):
            command = setting_option(name)(command)
        return command

    return decorate


def run_dir_option() -> Callable[[F], F]:
    return setting_option("run_dir")


def app_argument() -> Callable[[F], F]:
    return click.argument("app", required=False, envvar=SPECS["app"].env, metavar="[APP]")
