"""Turning a gunicorn config file, ``SIOCTL_*`` variables and command-line options into Settings.

gunicorn's ``Config`` is the settings model users already know, so a ``gunicorn.conf.py`` is read
with gunicorn's own loader. Precedence: command line > environment > config file > defaults.
Click already merges the first two (each option names its ``SIOCTL_*`` variable), so
:func:`build_settings` only has to lay the options over the file's values.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import click

from sioctl.cluster.settings import DEFAULT_PORT, Settings, mask_url, parse_bind

from . import appdir, rundir

# gunicorn settings that mean the same thing here; any other gunicorn setting in a config file
# is ignored with a warning (worker_class, threads, server hooks, ...).
APPLICABLE = (
    "bind",
    "workers",
    "timeout",
    "graceful_timeout",
    "keepalive",
    "loglevel",
    "accesslog",
    "errorlog",
    "access_log_format",
    "limit_request_line",
    "limit_request_fields",
    "limit_request_field_size",
    "certfile",
    "keyfile",
    "forwarded_allow_ips",
    "proxy_protocol",
    "pidfile",
    "daemon",
    "proc_name",
    "raw_env",
    "worker_connections",
    "backlog",
    "chdir",
    "wsgi_app",
)

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT_BIND = f"0.0.0.0:{DEFAULT_PORT}"
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_APP = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:.+)?$")


@dataclass
class FileConfig:
    """What a config file contributes: applicable values it set, and the names it ignored."""

    values: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


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
    return FileConfig(
        values={name: settings[name].get() for name in given if name in APPLICABLE},
        ignored=sorted(name for name in given if name not in APPLICABLE),
    )


def default_config_file(cwd: str) -> str | None:
    """``./gunicorn.conf.py`` if it exists: gunicorn reads it when no ``-c`` is given."""
    path = os.path.join(cwd, "gunicorn.conf.py")
    return path if os.path.isfile(path) else None


def split_binds(values: tuple[str, ...] | list[str]) -> list[str]:
    """Flatten ``-b`` values; each may hold several binds separated by commas or spaces."""
    return [part for value in values for part in re.split(r"[\s,]+", value) if part]


def check_redis_url(url: str) -> str | None:
    """None if ``url`` looks like a Redis URL, else why not (one line, password masked)."""
    scheme = urlsplit(url).scheme
    if scheme not in _REDIS_SCHEMES:
        return f"{mask_url(url)!r} is not a Redis URL (redis://, rediss:// or unix://)"
    return None


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


def build_settings(
    options: Mapping[str, Any],
    file_config: FileConfig,
    *,
    cwd: str,
    environ: Mapping[str, str],
    cpu_count: int | None,
) -> Settings:
    """Lay ``options`` (click's values, None when not given) over the config file's values.

    ``options`` keys: app, bind (tuple), workers, redis, redis_channel, title, env, run_dir,
    timeout, graceful_timeout, connect_timeout, allow_eio3, keepalive, header_timeout,
    worker_connections, backlog,
    pending_limit, log_level, access_logfile, error_logfile, pidfile, certfile, keyfile, chdir,
    daemon. Raises click.BadParameter or click.UsageError with one line for anything unusable.

    The app is ``module:attr`` or an app directory (see :mod:`.appdir`); with no app given,
    the ``--chdir`` directory (else ``cwd``) serves if it is laid out as one. For an app
    directory, ``app`` becomes its absolute path, ``chdir`` defaults to it, ``env`` to
    ``prod``, and its config is read here: a mistake in it raises :class:`.appdir.AppError`
    (exit 1), and its ``io.redis`` is the Redis URL unless ``redis`` is given.
    """
    file_values = file_config.values

    def pick(option: str, setting: str, default: Any) -> Any:
        value = options.get(option)
        if value is not None:
            return value
        if setting in file_values and file_values[setting] is not None:
            return file_values[setting]
        return default

    # An explicit --chdir stays the workers' working directory (an app directory is loaded from
    # its absolute path regardless); with no APP it is also where an app directory is sought.
    chdir_given = pick("chdir", "chdir", None)
    if chdir_given:
        chdir_given = os.path.normpath(os.path.join(cwd, os.path.expanduser(chdir_given)))
        if not os.path.isdir(chdir_given):
            raise click.BadParameter(f"{chdir_given} is not a directory", param_hint="'--chdir'")
    app = pick("app", "wsgi_app", None)
    app_dir = appdir.resolve(app, cwd=cwd, default_dir=chdir_given or cwd)
    if app_dir:
        app = app_dir
    elif not app:
        raise click.UsageError(
            "no app given: pass APP (module:attr or an app directory), set SIOCTL_APP, "
            "set wsgi_app in the config file, or run in an app directory"
        )
    else:
        problem = check_app(app)
        if problem:
            raise click.BadParameter(problem, param_hint="APP")

    bind_option = split_binds(options.get("bind") or ())
    binds = bind_option or list(file_values.get("bind") or []) or [DEFAULT_BIND]
    for bind in binds:
        try:
            parse_bind(bind)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'-b' / '--bind'") from None
    if options.get("metrics_bind"):
        try:
            parse_bind(options["metrics_bind"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--metrics-bind'") from None

    workers = pick("workers", "workers", cpu_count or 1)
    if not isinstance(workers, int) or workers < 1:
        raise click.BadParameter(f"{workers} is not a number of workers >= 1",
                                 param_hint="'-w' / '--workers'")

    env = options.get("env") or None
    app_config = None
    if app_dir:
        env = env or appdir.DEFAULT_ENV
        app_config = appdir.read_config(app_dir, env)
    # Precedence: --redis, then SIOCTL_REDIS (both reach us as the option), then io.redis.
    redis_url = options.get("redis") or (app_config and app_config.redis_url) or None
    if redis_url:
        problem = check_redis_url(redis_url)
        if problem:
            raise click.BadParameter(problem, param_hint="'--redis'")

    title = options.get("title") or file_values.get("proc_name") or (
        f"sioctl-{parse_bind(binds[0])[1]}"
    )
    problem = rundir.check_title(title)
    if problem:
        raise click.BadParameter(problem, param_hint="'--title'")

    loglevel = str(pick("log_level", "loglevel", "info")).lower()
    if loglevel not in LOG_LEVELS:
        raise click.BadParameter(
            f"{loglevel!r} is not one of {', '.join(LOG_LEVELS)}", param_hint="'--log-level'"
        )

    numbers: dict[str, float] = {}
    for option, setting, default, minimum in (
        ("timeout", "timeout", 30.0, 0.0),
        ("graceful_timeout", "graceful_timeout", 30.0, 0.0),
        ("connect_timeout", "connect_timeout", 45.0, 0.0),
        ("keepalive", "keepalive", 2.0, 0.0),
        ("header_timeout", "header_timeout", 10.0, 0.0),
        ("worker_connections", "worker_connections", 1000, 1),
        ("backlog", "backlog", 2048, 1),
        ("pending_limit", "pending_limit", 1024, 1),
    ):
        value = pick(option, setting, default)
        if value < minimum:
            hint = "'--" + option.replace("_", "-") + "'"
            raise click.BadParameter(f"{value} is below {minimum}", param_hint=hint)
        numbers[option] = value

    chdir = chdir_given or app_dir or cwd

    base = rundir.resolve_base(options.get("run_dir"), environ)
    daemon = options.get("daemon")
    if daemon is None:
        daemon = bool(file_values.get("daemon", False))

    settings = Settings(
        app=app,
        binds=binds,
        workers=workers,
        redis_url=redis_url,
        redis_channel=options.get("redis_channel") or "socketio",
        title=title,
        run_dir=rundir.cluster_dir(base, title),
        env=env,
        chdir=chdir,
        timeout=float(numbers["timeout"]),
        graceful_timeout=float(numbers["graceful_timeout"]),
        connect_timeout=float(numbers["connect_timeout"]),
        keepalive=float(numbers["keepalive"]),
        header_timeout=float(numbers["header_timeout"]),
        worker_connections=int(numbers["worker_connections"]),
        backlog=int(numbers["backlog"]),
        pending_limit=int(numbers["pending_limit"]),
        metrics_bind=options.get("metrics_bind") or None,
        redis_transport=options.get("redis_transport") or "pubsub",
        redis_stream_maxlen=int(options.get("redis_stream_maxlen") or 10_000),
        loglevel=loglevel,
        accesslog=_absolute(pick("access_logfile", "accesslog", None), cwd),
        errorlog=_absolute(pick("error_logfile", "errorlog", "-"), cwd) or "-",
        pidfile=_absolute(pick("pidfile", "pidfile", None), cwd),
        daemon=bool(daemon),
        proc_name=file_values.get("proc_name") or title,
    )
    # Settings only the config file can give: copy them as gunicorn validated them.
    for name in (
        "access_log_format",
        "limit_request_line",
        "limit_request_fields",
        "limit_request_field_size",
        "forwarded_allow_ips",
        "raw_env",
    ):
        if file_values.get(name) is not None:
            setattr(settings, name, file_values[name])
    for name in ("certfile", "keyfile"):
        setattr(settings, name, _absolute(pick(name, name, None), cwd))
    if options.get("forwarded_allow_ips"):
        settings.forwarded_allow_ips = split_binds([options["forwarded_allow_ips"]])
    for entry in settings.forwarded_allow_ips:
        try:
            if entry != "*":
                ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise click.BadParameter(f"{entry!r} is not an address, a network or '*'",
                                     param_hint="'--forwarded-allow-ips'") from None
    settings.proxy_protocol = bool(pick("proxy_protocol", "proxy_protocol", False))
    # --allow-eio3 / SIOCTL_ALLOW_EIO3, then the app directory's io.init.allow_eio3.
    allow_eio3 = options.get("allow_eio3")
    if allow_eio3 is None and app_config is not None:
        allow_eio3 = app_config.init.get("allow_eio3")
    settings.allow_eio3 = bool(allow_eio3)
    if bool(settings.certfile) != bool(settings.keyfile):
        raise click.BadParameter("certfile and keyfile must be given together",
                                 param_hint="'-c' / '--config'")
    return settings


def listen_urls(settings: Settings) -> list[str]:
    """``http(s)://host:port`` for each bind, for messages."""
    scheme = "https" if settings.certfile else "http"
    urls = []
    for bind in settings.binds:
        host, port = parse_bind(bind)
        shown = f"[{host}]" if ":" in host else host
        urls.append(f"{scheme}://{shown}:{port}")
    return urls
