"""Turning a gunicorn config file, ``SIOCTL_*`` variables and command-line options into Settings.

gunicorn's ``Config`` is the settings model users already know, so a ``gunicorn.conf.py`` is read
with gunicorn's own loader. Precedence: command line > environment > config file > defaults.
Click already merges the first two (each option names its ``SIOCTL_*`` variable), so
:func:`build_settings` only has to lay the options over the file's values.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import click

from sioctl.cluster.setting_spec import Spec
from sioctl.cluster.settings import (
    SPECS,
    TABLE,
    WORKER_CLASSES,
    Settings,
    parse_bind,
    unix_path,
    worker_class_from_gunicorn,
)

from . import appdir, rundir

# gunicorn settings that mean the same thing here (the table's gunicorn keys); any other gunicorn
# setting in a config file is ignored with a warning (threads, server hooks, a worker_class that
# is neither eventlet nor uvicorn's, ...).
APPLICABLE = tuple(spec.gunicorn for spec in TABLE if spec.gunicorn)

_APP = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:.+)?$")


@dataclass
class FileConfig:
    """What a config file contributes: applicable values it set, and the names it ignored."""

    values: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    # Names gunicorn itself does not know (a typo, or egg's ``port``/``sticky``).
    unknown: list[str] = field(default_factory=list)


def _gunicorn_loader() -> Any:
    # Imported here: gunicorn.app.base pulls in gunicorn's arbiter, which only `start` needs.
    from gunicorn.app.base import Application

    class _Loader(Application):
        """gunicorn's Application with its command-line parsing switched off."""

        def load_config(self) -> None:
            pass

        def init(self, parser: Any, opts: Any, args: Any) -> None:
            pass

        def load(self) -> None:
            pass

    return _Loader()


def load_config_file(location: str) -> FileConfig:
    """Read a gunicorn config (a path, ``file:PATH`` or ``python:MODULE``) the way gunicorn does.

    Raises click.BadParameter with one line if the file is missing, broken or sets a bad value;
    a broken file's traceback is written to stderr first, as gunicorn does.
    """
    loader = _gunicorn_loader()
    captured = io.StringIO()
    try:
        # gunicorn prints its own complaints; catch them so each error is reported once.
        with contextlib.redirect_stderr(captured):
            names = loader.load_config_from_file(location)
    except SystemExit:
        # Raised by gunicorn after printing the traceback of a file that does not run.
        header = f"Failed to read config file: {location}\n"
        sys.stderr.write(captured.getvalue().replace(header, ""))
        raise click.BadParameter(
            f"cannot read config file {location!r} (traceback above)",
            param_hint="'-c' / '--config'",
        ) from None
    except Exception as exc:
        first = captured.getvalue().strip().splitlines()
        what = first[0].rstrip(":") + ": " if first else ""
        raise click.BadParameter(
            f"{location}: {what}{exc}", param_hint="'-c' / '--config'"
        ) from None
    settings = loader.cfg.settings
    given = [name for name in names if name in settings]
    values = {name: settings[name].get() for name in given if name in APPLICABLE}
    ignored = [name for name in given if name not in APPLICABLE]
    # A worker class that names no engine (gunicorn's sync, gthread, gevent...) is ignored with
    # the others, as before engines existed: the engine then follows the app.
    if "worker_class" in values and (
        worker_class_from_gunicorn(values["worker_class"]) not in WORKER_CLASSES
    ):
        del values["worker_class"]
        ignored.append("worker_class")
    return FileConfig(values=values, ignored=sorted(ignored),
                      unknown=_unknown_names(names, settings))


def _unknown_names(names: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """The file's public names that are no gunicorn setting: gunicorn skips them silently.
    Modules and what the file imports (functions, classes) are tools, not settings."""
    module = names.get("__name__")
    unknown = []
    for name, value in names.items():
        if name in settings or name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if callable(value) and getattr(value, "__module__", module) != module:
            continue
        unknown.append(name)
    return sorted(unknown)


def default_config_file(cwd: str) -> str | None:
    """``./gunicorn.conf.py`` if it exists: gunicorn reads it when no ``-c`` is given."""
    path = os.path.join(cwd, "gunicorn.conf.py")
    return path if os.path.isfile(path) else None


def split_binds(values: tuple[str, ...] | list[str]) -> list[str]:
    """Flatten ``-b`` values; each may hold several binds separated by commas or spaces."""
    return [part for value in values for part in re.split(r"[\s,]+", value) if part]


def hostless_binds(options: Mapping[str, Any]) -> list[str]:
    """The ``-b`` values (option or SIOCTL_BIND) that name a port and no host (``7341``,
    ``:7341``): they listen on every interface, which a user may not mean."""
    given = split_binds(options.get("bind") or ())
    return [bind for bind in given if bind.startswith(":") or bind.strip().isdigit()]


def check_app(app: str) -> str | None:
    """None if ``app`` looks like ``module:attr`` (or a bare module), else why not."""
    if not _APP.match(app):
        return f"{app!r} is not an app reference of the form module:attr"
    return None


def _absolute(path: str | None, cwd: str) -> str | None:
    # Log files and pidfiles are given relative to where the command runs; the daemon runs
    # elsewhere, so pin them down now. "-" means stdout/stderr.
    if path is None or path == "-":
        return path
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


# Settings with rules of their own in build_settings; every other one is the option, else the
# config file's value, else the table's default, checked against the table's bounds.
_OWN_RULES = frozenset({
    "app", "binds", "workers", "redis_url", "title", "run_dir", "env", "chdir", "accesslog",
    "errorlog", "pidfile", "certfile", "keyfile", "forwarded_allow_ips", "allow_eio3",
    "proc_name", "metrics_bind",
})
# Settings an app directory's io.init may give when no option or variable does:
# setting -> (io.init key, the value's key inside it or None).
_APP_DIR_INIT = {"connection_state_recovery": ("connection_state_recovery",
                                               "max_disconnection_duration"),
                 "ws_per_message_deflate": ("per_message_deflate", None)}
# Files named relative to where the command runs.
_PATHS = ("accesslog", "errorlog", "pidfile", "certfile", "keyfile")


def _from_app_dir(src: _Sources, app_config: Any) -> dict[str, Any]:
    """The settings an app directory's io.init gives that no option or variable gave
    (io.init.connection_state_recovery's duration: --connection-state-recovery)."""
    found: dict[str, Any] = {}
    for name, (key, inner) in _APP_DIR_INIT.items():
        value = app_config.init.get(key)
        if inner is not None and isinstance(value, dict):
            value = value.get(inner)
        if src.option(name) is None and value is not None:
            found[name] = value
    return found


def hint(spec: Spec) -> str:
    """The option as click names it in an error: ``'-w' / '--workers'``."""
    return " / ".join(f"'{decl.split('/')[0]}'" for decl in spec.flags)


def _bad(name: str, message: str) -> click.BadParameter:
    return click.BadParameter(message, param_hint=hint(SPECS[name]))


@dataclass
class _Sources:
    """Click's values (option or SIOCTL_* variable) and the config file's, for one command."""

    options: Mapping[str, Any]
    file_values: Mapping[str, Any]

    def option(self, name: str) -> Any:
        """The setting's option if given; an empty string counts as not given, as click
        treats an empty ``SIOCTL_*`` variable."""
        value = self.options.get(SPECS[name].option)
        # A repeatable option given no value is click's empty tuple.
        return None if value == "" or value == () else value

    def pick(self, name: str, default: Any = None) -> Any:
        """The option, else the config file's value, else ``default``."""
        value = self.option(name)
        if value is not None:
            return value
        spec = SPECS[name]
        if spec.gunicorn and self.file_values.get(spec.gunicorn) is not None:
            value = self.file_values[spec.gunicorn]
            return spec.from_gunicorn(value) if spec.from_gunicorn else value
        return default


def _app_and_chdir(src: _Sources, cwd: str) -> tuple[str, str | None, str | None]:
    """(app, its app directory or None, the --chdir directory or None)."""
    # An explicit --chdir stays the workers' working directory (an app directory is loaded from
    # its absolute path regardless); with no APP it is also where an app directory is sought.
    chdir_given = src.pick("chdir")
    if chdir_given:
        chdir_given = os.path.normpath(os.path.join(cwd, os.path.expanduser(chdir_given)))
        if not os.path.isdir(chdir_given):
            raise _bad("chdir", f"{chdir_given} is not a directory")
    app = src.pick("app")
    app_dir = appdir.resolve(app, cwd=cwd, default_dir=chdir_given or cwd)
    if app_dir:
        return app_dir, app_dir, chdir_given
    if not app:
        raise click.UsageError(
            "no app given: pass APP (module:attr or an app directory), set SIOCTL_APP, "
            "set wsgi_app in the config file, or run in an app directory"
        )
    problem = check_app(app)
    if problem:
        raise click.BadParameter(problem, param_hint="APP")
    return app, None, chdir_given


def with_port(binds: list[str], port: int) -> list[str]:
    """egg-scripts' ``--port``: every interface on ``port``, or each ``-b`` host on it.

    A ``-b`` value may then be a bare host (``127.0.0.1``, ``[::1]``); one naming another
    port is refused (click.BadParameter): the port is given twice.
    """
    if not binds:
        return [f"0.0.0.0:{port}"]
    out = []
    for bind in binds:
        if ":" not in bind or (bind.startswith("[") and bind.endswith("]")):
            out.append(f"{bind}:{port}")
            continue
        host, given = parse_bind(bind)
        if given != port:
            raise click.BadParameter(f"bind {bind!r} names port {given}, --port {port}: "
                                     "give the port once", param_hint="'--port'")
        out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return out


def _binds(src: _Sources, cwd: str) -> tuple[list[str], str | None]:
    """The listening binds and the metrics bind, each checked."""
    given = split_binds(src.option("binds") or ())
    # Not a setting: it only says which port the binds use (see with_port).
    port = src.options.get("port")
    if port is not None:
        try:
            given = with_port(given, port)
        except ValueError as exc:
            raise _bad("binds", str(exc)) from None
    binds = given or list(src.file_values.get("bind") or []) or list(SPECS["binds"].default)
    # A Unix socket path is relative to where the command runs; the master runs elsewhere.
    binds = [f"unix:{_absolute(path, cwd)}" if (path := unix_path(bind)) else bind
             for bind in binds]
    metrics_bind = src.option("metrics_bind")
    for name, value in (("binds", binds), ("metrics_bind", metrics_bind)):
        problem = SPECS[name].problem(value)
        if problem:
            raise _bad(name, problem)
    return binds, metrics_bind


def _table_values(src: _Sources, cwd: str) -> dict[str, Any]:
    """The settings without rules of their own: option, file or default, within bounds."""
    values: dict[str, Any] = {}
    # Choices are checked before bounds (the log level before the numbers, as always).
    for spec in sorted(TABLE, key=lambda spec: not spec.choices):
        if spec.name in _OWN_RULES:
            continue
        value = src.pick(spec.name, spec.default)
        if spec.ignore_case:
            value = str(value).lower()
        if spec.multiple and isinstance(value, tuple):
            value = list(value)
        problem = spec.problem(value)
        if problem:
            raise _bad(spec.name, problem)
        # A config file may give 30 for a float or 1 for a flag; Settings holds the field's type.
        values[spec.name] = spec.kind(value) if spec.kind in (float, int, bool) else value
        if spec.multiple and isinstance(value, tuple):
            values[spec.name] = list(value)
    for name in _PATHS:
        values[name] = _absolute(src.pick(name, SPECS[name].default), cwd)
    return values


def _forwarded_allow_ips(src: _Sources) -> list[str]:
    """Addresses and networks (or '*') of the trusted proxies, each checked."""
    given = src.option("forwarded_allow_ips")
    entries = (split_binds([given]) if given
               else list(src.file_values.get("forwarded_allow_ips") or []))
    problem = SPECS["forwarded_allow_ips"].problem(entries)
    if problem:
        raise _bad("forwarded_allow_ips", problem)
    return entries


def build_settings(
    options: Mapping[str, Any],
    file_config: FileConfig,
    *,
    cwd: str,
    environ: Mapping[str, str],
    cpu_count: int | None,
) -> Settings:
    """Lay ``options`` (click's values, None when not given) over the config file's values.

    ``options`` are keyed by the click names of the settings' options (``Spec.option``: app,
    bind (a tuple), workers, redis, log_level, access_logfile, ...) plus run_dir; an empty
    string counts as not given. Raises click.BadParameter or click.UsageError with one line
    for anything unusable.

    The app is ``module:attr`` or an app directory (see :mod:`.appdir`); with no app given,
    the ``--chdir`` directory (else ``cwd``) serves if it is laid out as one. For an app
    directory, ``app`` becomes its absolute path, ``chdir`` defaults to it, ``env`` to
    ``prod``, and its config is read here: a mistake in it raises :class:`.appdir.AppError`
    (exit 1), and its ``io.redis`` is the Redis URL unless ``redis`` is given.
    """
    src = _Sources(options, file_config.values)
    app, app_dir, chdir_given = _app_and_chdir(src, cwd)
    binds, metrics_bind = _binds(src, cwd)
    workers = src.pick("workers", cpu_count or 1)
    if not isinstance(workers, int) or workers < 1:
        raise _bad("workers", f"{workers} is not a number of workers >= 1")

    env = src.option("env")
    app_config = None
    if app_dir:
        env = env or appdir.DEFAULT_ENV
        app_config = appdir.read_config(app_dir, env)
    # Precedence: --redis, then SIOCTL_REDIS (both reach us as the option), then io.redis.
    redis_url = src.option("redis_url") or (app_config and app_config.redis_url) or None
    problem = SPECS["redis_url"].problem(redis_url)
    if problem:
        raise _bad("redis_url", problem)

    # -n / proc_name names the processes and is the default title when it can be one (a
    # process name may hold spaces, a title names a directory).
    proc_name = src.pick("proc_name")
    usable = proc_name if proc_name and rundir.check_title(proc_name) is None else None
    title = src.option("title") or usable or default_title(binds[0])
    problem = rundir.check_title(title)
    if problem:
        raise _bad("title", problem)

    values = _table_values(src, cwd)
    check_identity(values["user"], values["group"])
    forwarded = _forwarded_allow_ips(src)
    if bool(values["certfile"]) != bool(values["keyfile"]):
        raise click.BadParameter("certfile and keyfile must be given together",
                                 param_hint="'-c' / '--config'")
    # --allow-eio3 / SIOCTL_ALLOW_EIO3, then the app directory's io.init.allow_eio3.
    allow_eio3 = src.option("allow_eio3")
    if allow_eio3 is None and app_config is not None:
        allow_eio3 = app_config.init.get("allow_eio3")

    if app_config is not None:
        values.update(_from_app_dir(src, app_config))

    base = rundir.resolve_base(src.option("run_dir"), environ)
    return Settings(
        app=app,
        binds=binds,
        workers=workers,
        redis_url=redis_url,
        title=title,
        run_dir=rundir.cluster_dir(base, title),
        env=env,
        chdir=chdir_given or app_dir or cwd,
        forwarded_allow_ips=forwarded,
        allow_eio3=bool(allow_eio3),
        proc_name=proc_name or title,
        metrics_bind=metrics_bind,
        **values,
    )


def default_title(bind: str) -> str:
    """``sioctl-PORT`` for the first bind, ``sioctl-NAME`` for a Unix socket ``.../NAME``."""
    path = unix_path(bind)
    if path is None:
        return f"{SPECS['title'].default}-{parse_bind(bind)[1]}"
    name = re.sub(r"[^A-Za-z0-9_.@+-]", "_", os.path.basename(path.rstrip("/"))) or "unix"
    return f"{SPECS['title'].default}-{name}"[:100]


def check_identity(user: str | None, group: str | None) -> None:
    """Raise click.BadParameter unless ``user`` and ``group`` (names or numbers, None: not
    given) exist here, and this process may switch to them (it runs as root, or is them)."""
    from sioctl.cluster import identity

    try:
        uid, gid = identity.resolve(user, group)
    except LookupError as exc:
        raise _bad("group" if "group" in str(exc) else "user", str(exc)) from None
    if os.geteuid() != 0 and (uid, gid) != (os.geteuid(), os.getegid()):
        raise _bad("user" if user else "group",
                   "switching user or group needs the master started as root")


def listen_urls(settings: Settings) -> list[str]:
    """``http(s)://host:port`` for each bind, for messages."""
    scheme = "https" if settings.certfile else "http"
    urls = []
    for bind in settings.binds:
        if unix_path(bind):
            urls.append(bind)
            continue
        host, port = parse_bind(bind)
        shown = f"[{host}]" if ":" in host else host
        urls.append(f"{scheme}://{shown}:{port}")
    return urls


def metrics_url(settings: Settings) -> str | None:
    """``http://host:port/metrics`` of ``--metrics-bind``, for messages; None without it."""
    if not settings.metrics_bind:
        return None
    host, port = parse_bind(settings.metrics_bind)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/metrics"
