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
from sioctl.cluster.settings import Settings, mask_url

from . import config, daemon, dev, reloader, rundir, skeleton, status, stopping
from .appdir import AppError
from .options import (
    app_argument,
    bind_option,
    env,
    option,
    redis_channel_option,
    redis_option,
    run_dir_option,
)


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
@option("-w", "--workers", type=click.IntRange(min=1), envvar=env("WORKERS"),
        help="Number of worker processes (default: the number of CPUs).")
@bind_option("Default 0.0.0.0:7001.")
@redis_option()
@redis_channel_option()
@option("--daemon/--no-daemon", default=None, envvar=env("DAEMON"),
        help="Run in the background; returns once every worker serves.")
@option("--title", envvar=env("TITLE"),
        help="Cluster name, for stop/status and the run directory (default sioctl-PORT).")
@option("--env", "env_name", envvar=env("ENV"), metavar="ENV",
        help="Environment name, exported to the app as SIOCTL_ENV; an app directory reads "
        "config/config_ENV.py (default prod there).")
@option("-c", "--config", "config_file", envvar=env("CONFIG"), metavar="FILE",
        help="gunicorn config file (path, file:PATH or python:MODULE); default ./gunicorn.conf.py "
        "if it exists. Options and SIOCTL_* variables override it.")
@run_dir_option()
@option("--timeout", type=click.FloatRange(min=0), envvar=env("TIMEOUT"), metavar="S",
        help="Kill a worker silent for this long (default 30).")
@option("--graceful-timeout", type=click.FloatRange(min=0), envvar=env("GRACEFUL_TIMEOUT"),
        metavar="S", help="Time workers get to finish on stop (default 30).")
@option("--connect-timeout", type=click.FloatRange(min=0), envvar=env("CONNECT_TIMEOUT"),
        metavar="S", help="Close a session that has not connected to a namespace after this "
        "long (default 45, as the Node server; 0: never).")
@option("--allow-eio3/--no-allow-eio3", default=None, envvar=env("ALLOW_EIO3"),
        help="Also serve Socket.IO v2 clients (Engine.IO protocol 3), as the Node server's "
        "allowEIO3; default: the app directory's io.init.allow_eio3, else off.")
@option("--keepalive", type=click.FloatRange(min=0), envvar=env("KEEPALIVE"), metavar="S",
        help="Close an HTTP connection idle this long between two requests (default 2; 0: "
        "no keep-alive).")
@option("--header-timeout", type=click.FloatRange(min=0), envvar=env("HEADER_TIMEOUT"),
        metavar="S", help="Close a connection that has not sent a complete request head this "
        "long after it arrived (TLS handshake included), or after a later request began "
        "(default 10; 0: no limit).")
@option("--worker-connections", type=click.IntRange(min=1), envvar=env("WORKER_CONNECTIONS"),
        metavar="N", help="Most connections one worker serves at once (default 1000).")
@option("--redis-transport", type=click.Choice(["pubsub", "streams"]),
        envvar=env("REDIS_TRANSPORT"),
        help="pubsub (default), or streams: a worker that loses Redis for a while receives "
        "what was published meanwhile, in order, exactly once.")
@option("--redis-stream-maxlen", type=click.IntRange(min=100), envvar=env("REDIS_STREAM_MAXLEN"),
        metavar="N", help="Entries each stream keeps (streams transport; default 10000).")
@option("--proxy-protocol/--no-proxy-protocol", default=None, envvar=env("PROXY_PROTOCOL"),
        help="Every connection starts with a PROXY protocol v1/v2 header (nginx stream "
        "proxy_protocol, HAProxy send-proxy): slots and REMOTE_ADDR use the client it names.")
@option("--forwarded-allow-ips", envvar=env("FORWARDED_ALLOW_IPS"), metavar="IPS",
        help="Comma-separated addresses or networks (or '*') of proxies whose X-Forwarded-For "
        "/ Forwarded / X-Real-IP headers name the client: the rightmost address not listed "
        "here (default: none).")
@option("--metrics-bind", envvar=env("METRICS_BIND"), metavar="HOST:PORT",
        help="Serve Prometheus metrics for the whole cluster at http://HOST:PORT/metrics.")
@option("--backlog", type=click.IntRange(min=1), envvar=env("BACKLOG"), metavar="N",
        help="Listen backlog (default 2048).")
@option("--pending-limit", type=click.IntRange(min=1), envvar=env("PENDING_LIMIT"), metavar="N",
        help="Connections the master holds per slot while its worker is not ready or not "
        "reading; past this they are closed and logged (default 1024).")
@option("--log-level", type=click.Choice(config.LOG_LEVELS, case_sensitive=False),
        envvar=env("LOG_LEVEL"), help="Log level (default info).")
@option("--access-logfile", envvar=env("ACCESS_LOGFILE"), metavar="FILE",
        help="Access log file, '-' for stdout (default: none).")
@option("--error-logfile", envvar=env("ERROR_LOGFILE"), metavar="FILE",
        help="Error log file, '-' for stderr (default '-'; with --daemon, RUN_DIR/sioctl.log).")
@option("--pidfile", envvar=env("PIDFILE"), metavar="FILE",
        help="Also write the master's pid here (it is always in RUN_DIR/master.pid).")
@option("--certfile", envvar=env("CERTFILE"), metavar="FILE",
        help="TLS certificate (PEM); with --keyfile the workers serve https and wss.")
@option("--keyfile", envvar=env("KEYFILE"), metavar="FILE", help="TLS private key (PEM).")
@option("--chdir", envvar=env("CHDIR"), metavar="DIR",
        help="Working directory of the workers, where module:attr apps are imported from "
        "(default: the app directory, else the current directory).")
@option("--print-config", is_flag=True,
        help="Print the resolved settings as JSON (passwords masked) and exit.")
def start(sticky: bool, config_file: str | None, print_config: bool, **options: Any) -> None:
    """Start a cluster serving APP.

    APP is module:attr or an app directory (app/router.py, config/config_*.py); default:
    SIOCTL_APP, wsgi_app from the config file, or the current directory if it is an app
    directory. Settings come from the options, then SIOCTL_* variables, then the gunicorn
    config file; an app directory's io.redis comes last.
    """
    cwd = os.getcwd()
    options["env"] = options.pop("env_name")
    settings = _start_settings(config_file, options, cwd)
    if print_config:
        shown = dataclasses.asdict(settings)
        if settings.redis_url:
            shown["redis_url"] = mask_url(settings.redis_url)
        click.echo(json.dumps(shown, indent=2))
        return
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
            outcome = daemon.start(settings)
        except OSError as exc:
            raise click.ClickException(f"cannot start the master: {exc}") from None
        if outcome.ok:
            click.echo(f"sioctl: {settings.title} started (pid {outcome.pid}) on {urls}, "
                       f"logs in {outcome.log_path}")
            return
        _say(f"sioctl: {settings.title} failed to start: {outcome.message}")
        if outcome.message.startswith("the master exited"):
            lines = daemon.tail(outcome.log_path)
            if lines:
                _say(f"last lines of {outcome.log_path}:")
                for line in lines:
                    _say(f"  {line}")
        sys.exit(1)
    if settings.env:
        os.environ["SIOCTL_ENV"] = settings.env
    os.chdir(settings.chdir)
    # Imported only here: the master is not needed to stop, inspect or build settings.
    from sioctl.cluster.arbiter import Arbiter

    sys.exit(Arbiter(settings).run())


def _start_settings(location: str | None, options: dict[str, Any], cwd: str) -> Settings:
    """Settings from the config file, then SIOCTL_* variables and options laid over it."""
    location = location or config.default_config_file(cwd)
    file_config = config.load_config_file(location) if location else config.FileConfig()
    if file_config.ignored:
        ignored = ", ".join(file_config.ignored)
        _say(f"sioctl: ignoring gunicorn settings that do not apply: {ignored}")
    return config.build_settings(
        options, file_config, cwd=cwd, environ=os.environ, cpu_count=os.cpu_count()
    )


@cli.command()
@option("--title", envvar=env("TITLE"), help="Stop only this cluster.")
@option("--pidfile", metavar="FILE", help="Stop the master whose pid is in FILE.")
@run_dir_option()
@option("--timeout", type=click.FloatRange(min=0), default=None, metavar="S",
        help="Kill (SIGKILL) the master if it still runs after this long (default: the "
        "cluster's graceful timeout + 5 s, or 35 s when it does not say).")
@option("--force", is_flag=True, help="Stop at once instead of letting connections finish.")
def stop(title: str | None, pidfile: str | None, run_dir: str | None, timeout: float | None,
         force: bool) -> None:
    """Stop a cluster (by title or pidfile), or every cluster under the run directory."""
    graceful = not force
    if title and pidfile:
        raise click.UsageError("give --title or --pidfile, not both")
    if pidfile:
        wait = timeout if timeout is not None else stopping.DEFAULT_STOP_TIMEOUT
        if not stopping.stop_pidfile(pidfile, graceful=graceful, timeout=wait, say=_say):
            sys.exit(1)
        return
    base = rundir.resolve_base(run_dir, os.environ)
    found_all = _find(base, title)
    stopped = 0
    for found in found_all:
        message = stopping.stale_message(base, found)
        if message:
            _say(message)
            continue
        wait = timeout if timeout is not None else stopping.stop_timeout(found)
        if stopping.stop_found(base, found, graceful=graceful, timeout=wait, say=_say):
            stopped += 1
    if not stopped:
        _nothing_running(base, title)


@cli.command(name="status")
@option("--title", envvar=env("TITLE"), help="Show only this cluster.")
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


def _nothing_running(base: str, title: str | None) -> None:
    if title:
        _say(f"sioctl: no sioctl cluster titled '{title}' under {base}")
    else:
        _say("sioctl: no sioctl cluster is running")
    sys.exit(1)


@cli.command(name="dev")
@app_argument()
@option("-b", "--bind", default=dev.DEFAULT_BIND, show_default=True, metavar="HOST:PORT",
        help="Address to listen on.")
@option("-w", "--workers", type=click.IntRange(min=1), default=1, show_default=True,
        help="More than one runs the sticky cluster locally.")
@redis_option()
@redis_channel_option()
@option("--env", "env_name", default=dev.DEFAULT_ENV, show_default=True, envvar=env("ENV"),
        metavar="ENV", help="Environment name, exported to the app as SIOCTL_ENV; an app "
        "directory reads config/config_ENV.py.")
@run_dir_option()
@option("--allow-eio3/--no-allow-eio3", default=None, envvar=env("ALLOW_EIO3"),
        help="Also serve Socket.IO v2 clients (Engine.IO protocol 3); default: the app "
        "directory's io.init.allow_eio3, else off.")
@option("--reload/--no-reload", default=True,
        help="Restart when a .py file under the app directory (or the current directory) "
        "changes (default on).")
def dev_command(app: str | None, bind: str, workers: int, redis: str | None,
                redis_channel: str | None, env_name: str, run_dir: str | None,
                allow_eio3: bool | None, reload: bool) -> None:
    """Serve APP for development: debug logs, restart on code changes.

    APP is module:attr or an app directory; default: SIOCTL_APP, or the current directory.
    """
    cwd = os.getcwd()
    settings = dev.dev_settings(app=app, bind=bind, workers=workers, redis=redis,
                                redis_channel=redis_channel, env_name=env_name,
                                run_dir=run_dir, cwd=cwd, environ=os.environ,
                                allow_eio3=allow_eio3)
    url = config.listen_urls(settings)[0]
    _say(f"sioctl dev: serving {settings.app} on {url} "
         f"({settings.workers} worker{'s' if settings.workers > 1 else ''}, "
         f"{'reloading on changes' if reload else 'no reload'}); Ctrl-C to stop")
    child_env = daemon.child_environ(settings, os.environ)
    if reload:
        # A .pyc is trusted when the source's size and mtime (whole seconds) match; a quick
        # same-size save right after a restart would then run the old code.
        child_env["PYTHONDONTWRITEBYTECODE"] = "1"
    code = reloader.supervise(
        dev.child_command(settings),
        env=child_env,
        # An app directory is its own chdir, so that is what the reloader watches.
        cwd=settings.chdir,
        reload=reload,
        stop_timeout=dev.stop_timeout(settings),
        log=_say,
    )
    sys.exit(code)


@cli.command(name="init")
@click.argument("directory", metavar="DIR")
@option("--force", is_flag=True,
        help="Write into a non-empty DIR, replacing files of the same names.")
def init_command(directory: str, force: bool) -> None:
    """Write a small working chat app to DIR, laid out as an app directory.

    It has a router, a chat controller, an auth and a logging middleware, per-environment
    config and a test; `sioctl dev` serves it as it is.
    """
    try:
        written = skeleton.write(directory, force=force)
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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="sioctl")
