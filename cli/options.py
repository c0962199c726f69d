"""Click options shared by the commands; each names the SIOCTL_* variable it also reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def env(name: str) -> str:
    return f"SIOCTL_{name}"


def option(*decls: str, envvar: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """click.option with the env variable shown in --help."""
    if envvar:
        kwargs.setdefault("show_envvar", True)
    return click.option(*decls, envvar=envvar, **kwargs)


def run_dir_option() -> Callable[[F], F]:
    return option(
        "--run-dir",
        envvar=env("RUN_DIR"),
        metavar="DIR",
        help="Base of the run directories (default $XDG_RUNTIME_DIR/sioctl or ~/.sioctl/run); "
        "each cluster uses DIR/TITLE.",
    )


def app_argument() -> Callable[[F], F]:
    return click.argument("app", required=False, envvar=env("APP"), metavar="[APP]")


def bind_option(default_help: str) -> Callable[[F], F]:
    return option(
        "-b",
        "--bind",
        multiple=True,
        envvar=env("BIND"),
        metavar="HOST:PORT",
        help=f"Address to listen on; repeatable. {default_help} "
        "SIOCTL_BIND may hold several, separated by spaces or commas.",
    )


def redis_option() -> Callable[[F], F]:
    return option(
        "--redis",
        envvar=env("REDIS"),
        metavar="URL",
        help="Redis joining the workers (redis://, rediss://, unix://). Default: an embedded "
        "redis-server with several workers, in-memory with one.",
    )


def redis_channel_option() -> Callable[[F], F]:
    return option(
        "--redis-channel",
        envvar=env("REDIS_CHANNEL"),
        metavar="NAME",
        help="Redis pub/sub channel of the socketio manager (default socketio).",
    )
