"""The ``sioctl`` command: start, stop, status and dev."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import time
from typing import Any

import click

import sioctl
from sioctl.cluster import engine_probe, proctitle
from sioctl.cluster.settings import Settings, mask_url, parse_bind

from . import (
    checks,
    config,
    daemon,
    dev,
    operate,
    procs,
    rebuild,
    reloader,
    rundir,
    skeleton,
    status,
    stopping,
)
from .appdir import AppError
from .options import app_argument, env, option, run_dir_option, setting_option, setting_options


def _say(message: str) -> None:
    click.echo(message, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(sioctl.__version__, "-V", "--version", prog_name="sioctl")
def cli() -> None:
    """Run a python-socketio app on every core, with sticky sessions and Redis."""


@cli.command()
@app_argument()
@option(
    "--sticky",
    is_flag=True,
    help="Route each client IP to the same worker. Always on: sticky is the only mode; the "
    "flag is accepted so egg-scripts command lines keep working.",
)
@setting_options("workers", "worker_class", "binds")
@option("--port", type=click.IntRange(0, 65535), envvar=env("PORT"), metavar="PORT",
        help="Listen on PORT on every interface (0.0.0.0), or on each -b host, as "
        "egg-scripts' --port.")
@setting_options("redis_url", "redis_channel", "daemon", "title", "proc_name", "env", "raw_env")
@option("-c", "--config", "config_file", envvar=env("CONFIG"), metavar="FILE",
        help="gunicorn config file (path, file:PATH or python:MODULE); default ./gunicorn.conf.py "
        "if it exists. Options and SIOCTL_* variables override it.")
@setting_options(
    "run_dir", "timeout", "graceful_timeout", "connect_timeout", "connection_state_recovery",
    "allow_eio3", "ws_per_message_deflate", "keepalive",
    "header_timeout", "worker_connections", "redis_transport", "redis_stream_maxlen",
    "proxy_protocol", "forwarded_allow_ips", "metrics_bind", "backlog", "pending_limit",
    "loglevel", "accesslog", "errorlog", "pidfile", "certfile", "keyfile", "chdir", "user",
    "group",
)
@option("--print-config", is_flag=True,
        help="Print the resolved settings as JSON (passwords masked) and exit.")
@option("--check-config", is_flag=True,
        help="Load the config and import the app as a worker would, print OK or the error, "
        "and exit (0 or 1) without starting anything.")
def start(sticky: bool, config_file: str | None, print_config: bool, check_config: bool,
          **options: Any) -> None:
    """Start a cluster serving APP.

    APP is module:attr or an app directory (app/router.py, config/config_*.py); default:
    SIOCTL_APP, wsgi_app from the config file, or the current directory if it is an app
    directory. Settings come from the options, then SIOCTL_* variables, then the gunicorn
    config file; an app directory's io.redis comes last.
    """
    proctitle.keep_environment()  # before a config file brings gunicorn (and setproctitle) in
    cwd = os.getcwd()
    try:
        settings = start_settings(config_file, options, cwd)
    except click.ClickException as exc:
        if not check_config:
            raise
        # gunicorn's --check-config: 1 for any error, the config's included.
        _say(f"error: {exc.format_message()}")
        sys.exit(1)
    if print_config:
        shown = dataclasses.asdict(settings)
        if settings.redis_url:
            shown["redis_url"] = mask_url(settings.redis_url)
        click.echo(json.dumps(shown, indent=2))
        return
    if check_config:
        sys.exit(checks.check_app(settings, say=_say))
    sys.exit(launch(settings, rebuild.Recipe.of(config_file, options, cwd)))


def launch(settings: Settings, recipe: rebuild.Recipe | None = None) -> int:
    """Run the cluster ``settings`` describe, as ``sioctl start`` does: in the foreground until
    it stops (the master's exit status), or with ``daemon`` until every worker is ready (0).
    With ``recipe`` (how the settings were built), HUP reads the config files again.
    Raises click.ClickException when it cannot start (a cluster of that title runs, say)."""
    base = os.path.dirname(settings.run_dir)
    found = stopping.probe(base, settings.title)
    if found is not None and found.answering:
        raise click.ClickException(
            f"a sioctl cluster titled '{settings.title}' is already running (pid {found.pid}); "
            "pick another --title or stop it first"
        )
    urls = ", ".join(config.listen_urls(settings))
    if settings.daemon:
        try:
            outcome = daemon.start(settings, recipe)
        except OSError as exc:
            raise click.ClickException(f"cannot start the master: {exc}") from None
        if outcome.ok:
            metrics = config.metrics_url(settings)
            click.echo(f"sioctl: {settings.title} started (pid {outcome.pid}) on {urls}, "
                       + (f"metrics at {metrics}, " if metrics else "")
                       + f"logs in {outcome.log_path}")
            return 0
        _say(f"sioctl: {settings.title} failed to start: {outcome.message}")
        if outcome.message.startswith("the master exited"):
            lines = daemon.tail(outcome.log_path)
            if lines:
                _say(f"last lines of {outcome.log_path}:")
                for line in lines:
                    _say(f"  {line}")
        return 1
    if settings.env:
        os.environ["SIOCTL_ENV"] = settings.env
    os.chdir(settings.chdir)
    # Imported only here: the master is not needed to stop, inspect or build settings.
    from sioctl.cluster.arbiter import Arbiter

    return Arbiter(settings, rebuild.rebuilder(recipe)).run()


def start_settings(location: str | None, options: dict[str, Any], cwd: str) -> Settings:
    """Settings from the config file, then SIOCTL_* variables and options laid over it."""
    location = location or config.default_config_file(cwd)
    file_config = config.load_config_file(location) if location else config.FileConfig()
    if file_config.ignored:
        ignored = ", ".join(file_config.ignored)
        _say(f"sioctl: ignoring gunicorn settings that do not apply: {ignored}")
    if file_config.unknown:
        _say(f"sioctl: not gunicorn settings, skipped: {', '.join(file_config.unknown)}")
    settings = config.build_settings(
        options, file_config, cwd=cwd, environ=os.environ, cpu_count=os.cpu_count()
    )
    hostless = config.hostless_binds(options)
    if hostless:
        # A bare port reads like "local port 7341" and is every interface; say it once.
        shown = ", ".join(f"-b {bind}" for bind in hostless)
        _say(f"sioctl: warning: {shown} listens on every interface (0.0.0.0); give a host "
             "(-b 127.0.0.1:PORT to stay local, -b 0.0.0.0:PORT to mean it)")
    return settings


@cli.command()
@setting_option("title", help="Stop only this cluster.")
@option("--pidfile", metavar="FILE", help="Stop the master whose pid is in FILE.")
@option("--all", "stop_all", is_flag=True,
        help="Stop every cluster under the run directory (without it, a bare stop refuses "
        "when several run).")
@option("--if-running", is_flag=True,
        help="Exit 0 when no cluster runs (for deploy scripts under set -e).")
@run_dir_option()
@option("--timeout", type=click.FloatRange(min=0), default=None, metavar="S",
        help="Kill (SIGKILL) the master if it still runs after this long (default: the "
        f"cluster's graceful timeout + {stopping.STOP_SLACK:g} s, or "
        f"{stopping.DEFAULT_STOP_TIMEOUT:g} s when it does not say).")
@option("--force", is_flag=True, help="Stop at once instead of letting connections finish.")
def stop(title: str | None, pidfile: str | None, stop_all: bool, if_running: bool,
         run_dir: str | None, timeout: float | None, force: bool) -> None:
    """Stop a cluster: by --title or --pidfile, the only one under the run directory, or
    every one with --all."""
    graceful = not force
    if sum(map(bool, (title, pidfile, stop_all))) > 1:
        raise click.UsageError("give one of --title, --pidfile and --all")
    if pidfile:
        wait = timeout if timeout is not None else stopping.DEFAULT_STOP_TIMEOUT
        pid = rundir.read_pidfile(pidfile)
        idle = pid is None or not procs.is_alive(pid)
        if not stopping.stop_pidfile(pidfile, graceful=graceful, timeout=wait, say=_say):
            sys.exit(0 if if_running and idle else 1)
        return
    base = rundir.resolve_base(run_dir, os.environ)
    alive = []
    for found in _find(base, title):
        message = stopping.stale_message(base, found)
        if message:
            _say(message)
        else:
            alive.append(found)
    if len(alive) > 1 and not stop_all and not title:
        # A bare stop used to stop every cluster: one machine may run several apps' clusters,
        # and a script meant for one must not take the others down.
        _say(f"sioctl: {len(alive)} clusters run under {base}; stopping none:")
        for found in alive:
            _say(f"  {found.title} (pid {found.pid})")
        _say("sioctl: name one with --title NAME, or stop them all with --all")
        sys.exit(1)
    stopped = 0
    for found in alive:
        wait = timeout if timeout is not None else stopping.stop_timeout(found)
        if stopping.stop_found(base, found, graceful=graceful, timeout=wait, say=_say):
            stopped += 1
    if not stopped:
        _nothing_running(base, title, ok=if_running and not alive)


@cli.command(name="status")
@setting_option("title", help="Show only this cluster.")
@run_dir_option()
@option("--json", "as_json", is_flag=True,
        help="Print the masters' raw replies: one object with --title, else a list.")
def status_command(title: str | None, run_dir: str | None, as_json: bool) -> None:
    """Show each running cluster and its workers."""
    base = rundir.resolve_base(run_dir, os.environ)
    replies = []
    for found in _find(base, title):
        message = stopping.stale_message(base, found)
        if message:
            _say(message)
        elif found.reply is None:
            _say(f"sioctl: '{found.title}' (pid {found.pid}) does not answer on its control socket")
        else:
            replies.append(found.reply)
    if not replies:
        _nothing_running(base, title)
    if as_json:
        click.echo(json.dumps(replies[0] if title else replies, indent=2))
        return
    now = time.time()
    click.echo("\n\n".join(status.render(reply, now) for reply in replies))


def _find(base: str, title: str | None) -> list[stopping.Found]:
    if title:
        found = stopping.probe(base, title)
        return [found] if found else []
    return [f for t in rundir.known_titles(base) if (f := stopping.probe(base, t))]


def _nothing_running(base: str, title: str | None, ok: bool = False) -> None:
    """Say that nothing runs and exit: 0 if ``ok`` (stop --if-running), else 1."""
    if title:
        _say(f"sioctl: no sioctl cluster titled '{title}' under {base}")
    else:
        _say("sioctl: no sioctl cluster is running")
    sys.exit(0 if ok else 1)


@cli.command(name="dev")
@app_argument()
@setting_option("binds", multiple=False, envvar=None, default=dev.DEFAULT_BIND,
                show_default=True, help="Address to listen on.")
@option("--port", type=click.IntRange(0, 65535), metavar="PORT",
        help="Listen on PORT (on the --bind host), as egg-bin dev's --port.")
@setting_option("workers", envvar=None, default=1, show_default=True,
                help="More than one runs the sticky cluster locally.")
@option("--sticky", is_flag=True,
        help="Accepted so that `egg-bin dev --sticky` scripts keep working: one process needs "
        "no stickiness, and --workers N runs the sticky cluster.")
@setting_options("worker_class", "redis_url", "redis_channel")
@setting_option("env", default=dev.DEFAULT_ENV, show_default=True,
                help="Environment name, exported to the app as SIOCTL_ENV; an app directory "
                "reads config/config_ENV.py.")
@run_dir_option()
@setting_option("allow_eio3", help="Also serve Socket.IO v2 clients (Engine.IO protocol 3); "
                "default: the app directory's io.init.allow_eio3, else off.")
@setting_options("ws_per_message_deflate")
@option("--reload/--no-reload", default=True,
        help="Restart when a .py file under the app directory (or the current directory) "
        "changes (default on).")
def dev_command(app: str | None, bind: str, port: int | None, workers: int, sticky: bool,
                worker_class: str | None,
                redis: str | None, redis_channel: str | None, env: str, run_dir: str | None,
                allow_eio3: bool | None, ws_per_message_deflate: bool | None,
                reload: bool) -> None:
    """Serve APP for development: debug logs, restart on code changes.

    APP is module:attr or an app directory; default: SIOCTL_APP, or the current directory.
    One process by default (--sticky is accepted and changes nothing); --workers N runs the
    sticky cluster.
    """
    cwd = os.getcwd()
    if port is not None:
        # --port moves the default 127.0.0.1:7001 (or the --bind host) to PORT.
        try:
            bare = ":" not in bind or bind.endswith("]")
            host = bind.strip("[]") if bare else parse_bind(bind)[0]
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'-b' / '--bind'") from None
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    settings = dev.dev_settings(app=app, bind=bind, workers=workers, redis=redis,
                                redis_channel=redis_channel, env_name=env,
                                run_dir=run_dir, cwd=cwd, environ=os.environ,
                                allow_eio3=allow_eio3, worker_class=worker_class,
                                ws_per_message_deflate=ws_per_message_deflate)
    url = config.listen_urls(settings)[0]
    _say(f"sioctl dev: serving {settings.app} on {url} "
         f"({settings.workers} worker{'s' if settings.workers > 1 else ''}, "
         f"{'reloading on changes' if reload else 'no reload'}); Ctrl-C to stop")
    try:
        command = dev.child_command(settings)
    except engine_probe.ProbeError as exc:
        raise click.ClickException(str(exc)) from None
    child_env = daemon.child_environ(settings, os.environ)
    if reload:
        # A .pyc is trusted when the source's size and mtime (whole seconds) match; a quick
        # same-size save right after a restart would then run the old code.
        child_env["PYTHONDONTWRITEBYTECODE"] = "1"
    code = reloader.supervise(
        command,
        env=child_env,
        # An app directory is its own chdir, so that is what the reloader watches.
        cwd=settings.chdir,
        reload=reload,
        stop_timeout=dev.stop_timeout(settings),
        log=_say,
        # The engine is probed again at each restart: the app may have changed sides.
        relaunch=lambda: dev.restart_command(settings, _say),
    )
    sys.exit(code)


@cli.command(name="init")
@click.argument("directory", metavar="DIR")
@option("--force", is_flag=True,
        help="Write into a non-empty DIR, replacing files of the same names.")
@option("--engine", type=click.Choice(skeleton.ENGINES), default="eventlet", show_default=True,
        help="asyncio: async def controllers and middleware that await next(), served by the "
             "asyncio engine; eventlet: plain functions.")
def init_command(directory: str, force: bool, engine: str) -> None:
    """Write a small working chat app to DIR, laid out as an app directory.

    It has a router, a chat controller, an auth and a logging middleware, per-environment
    config and a test; `sioctl dev` serves it as it is (on the engine its code needs).
    """
    try:
        written = skeleton.write(directory, force=force, engine=engine)
    except skeleton.SkeletonError as exc:
        raise AppError(str(exc)) from None
    except OSError as exc:
        raise AppError(f"cannot write {directory}: {exc.strerror or exc}") from None
    click.echo(f"sioctl: wrote {len(written)} files to {directory}")
    click.echo("Next steps:")
    click.echo(f"  cd {shlex.quote(directory)}")
    click.echo(f"  sioctl dev      # serves it on http://{dev.DEFAULT_BIND}, restarting on changes")
    click.echo('  pytest test     # needs: pip install pytest "python-socketio[client]"')


@cli.command(name="nginx")
@option("--node", "nodes", multiple=True, required=True, metavar="HOST:PORT",
        help="A sioctl node to send clients to; repeatable.")
@option("--listen", metavar="[HOST:]PORT",
        help="Where nginx listens (default 80, or 443 with --tls).")
@option("--server-name", metavar="NAME", help="nginx server_name (default _, any name).")
@option("--tls", is_flag=True, help="nginx terminates TLS; needs --certfile and --keyfile.")
@option("--certfile", metavar="FILE", help="TLS certificate chain (PEM) for nginx.")
@option("--keyfile", metavar="FILE", help="TLS private key (PEM) for nginx.")
@option("--stream", is_flag=True,
        help="Pass TCP with a PROXY protocol header (nodes run --proxy-protocol) instead of "
        "proxying HTTP with X-Forwarded-For (nodes run --forwarded-allow-ips).")
def nginx_command(nodes: tuple[str, ...], listen: str | None, server_name: str | None,
                  tls: bool, certfile: str | None, keyfile: str | None, stream: bool) -> None:
    """Print an nginx.conf that puts nginx in front of the given sioctl nodes.

    With several nodes, nginx picks one by `hash $remote_addr consistent`, so each client
    keeps reaching the same node.
    """
    from . import nginx

    if tls and not (certfile and keyfile):
        raise click.ClickException("--tls needs --certfile and --keyfile")
    if (certfile or keyfile) and not tls:
        raise click.ClickException("--certfile and --keyfile go with --tls")
    if stream and server_name:
        raise click.ClickException("--server-name does not apply to --stream (TCP has no names)")
    try:
        addresses = [nginx.parse_address(node) for node in nodes]
        where = nginx.parse_listen(listen) if listen else None
        tls_files = nginx.Tls(certfile, keyfile) if certfile and keyfile else None
        if stream:
            module = nginx.DEBIAN_STREAM_MODULE
            text = nginx.stream_config(addresses, listen=where, tls=tls_files,
                                       stream_module=module if os.path.exists(module) else None)
        else:
            text = nginx.http_config(addresses, listen=where, server_name=server_name,
                                     tls=tls_files)
    except nginx.NginxConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(text, nl=False)


# Day-2 commands to a running cluster, kept in their own module.
cli.add_command(operate.scale_command)
cli.add_command(operate.reload_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="sioctl")
