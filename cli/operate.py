"""``sioctl scale`` and ``sioctl reload``: day-2 commands to a running cluster, through the
control socket in its run directory (the same master code as the TTIN/TTOU and HUP signals)."""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any

import click

from sioctl.cluster import control

from . import rundir, stopping
from .options import option, run_dir_option, setting_option

# How long --wait waits for the workers by default.
WAIT_TIMEOUT = 60.0
_COUNT = re.compile(r"^[+-]?\d+$")


def _say(message: str) -> None:
    click.echo(message, err=True)


def find_one(run_dir: str | None, title: str | None) -> tuple[str, stopping.Found]:
    """(the base, the one running cluster meant): ``title``'s, or the only one under the base.

    Exits with status 1 and says why when there is none, or several and no ``--title``: a
    command that changes a cluster never guesses which.
    """
    base = rundir.resolve_base(run_dir, os.environ)
    titles = [title] if title else rundir.known_titles(base)
    found = [f for t in titles if (f := stopping.probe(base, t)) and f.answering]
    if not found:
        where = f"titled '{title}' " if title else ""
        _say(f"sioctl: no sioctl cluster {where}is running under {base}")
        sys.exit(1)
    if len(found) > 1:
        _say("sioctl: several clusters are running; name one with --title: "
             + ", ".join(f.title for f in found))
        sys.exit(1)
    return base, found[0]


def ask(base: str, title: str, command: dict[str, Any]) -> dict[str, Any]:
    """The master's reply to ``command``; exits with status 1 if it does not answer or
    refuses (``ok`` false; a status reply has no ``ok``), saying its reason."""
    try:
        reply = control.request(rundir.control_socket(base, title), command)
    except control.ControlError as exc:
        _say(f"sioctl: '{title}': {exc}")
        sys.exit(1)
    if not reply.get("ok", "slots" in reply):
        _say(f"sioctl: '{title}': {reply.get('error', 'refused')}")
        sys.exit(1)
    return reply


def target_count(count: str, current: int) -> int:
    """``N`` (that many workers), ``+K`` or ``-K`` (relative to ``current``)."""
    if not _COUNT.match(count):
        raise click.BadParameter(f"{count!r} is not N, +K or -K", param_hint="COUNT")
    return current + int(count) if count[0] in "+-" else int(count)


def wait_workers(base: str, title: str, workers: int, timeout: float) -> None:
    """Wait until ``workers`` slots each have a ready worker and nothing drains; exits with
    status 1 after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        reply = ask(base, title, {"cmd": "status"})
        slots = reply.get("slots", [])
        if len(slots) == workers and all(s.get("state") == "ready" for s in slots):
            return
        if time.monotonic() >= deadline:
            states = ", ".join(f"{s.get('slot')}: {s.get('state')}" for s in slots)
            _say(f"sioctl: '{title}' not at {workers} ready workers after {timeout:g}s ({states})")
            sys.exit(1)
        time.sleep(0.2)


# ignore_unknown_options: "-1" is a COUNT, not an option.
@click.command(name="scale", context_settings={"ignore_unknown_options": True})
@click.argument("count", metavar="COUNT")
@setting_option("title", help="The cluster to scale (needed when several run).")
@run_dir_option()
@option("--wait/--no-wait", default=False,
        help="Return once every worker of the new count is ready (default: at once).")
@option("--timeout", type=click.FloatRange(min=0), default=WAIT_TIMEOUT, show_default=True,
        metavar="S", help="How long --wait waits.")
def scale_command(count: str, title: str | None, run_dir: str | None, wait: bool,
                  timeout: float) -> None:
    """Run COUNT workers (N, +K or -K), as TTIN / TTOU do one at a time.

    New workers take over ~1/N of the clients each once ready; removed workers (the highest
    slots) drain as in a rolling restart. Never fewer than 1.
    """
    target_count(count, 1)  # a malformed COUNT is a usage error before anything is asked
    base, found = find_one(run_dir, title)
    assert found.reply is not None
    current = int(found.reply.get("workers") or len(found.reply.get("slots", [])))
    target = target_count(count, current)
    reply = ask(base, found.title, {"cmd": "scale", "workers": target})
    click.echo(f"sioctl: {found.title}: {reply['from']} -> {reply['workers']} workers")
    if wait:
        wait_workers(base, found.title, target, timeout)
        click.echo(f"sioctl: {found.title}: {target} workers ready")


@click.command(name="reload")
@setting_option("title", help="The cluster to reload (needed when several run).")
@run_dir_option()
def reload_command(title: str | None, run_dir: str | None) -> None:
    """Read the config again and restart the workers one at a time, as HUP does.

    The gunicorn config file (-c, or ./gunicorn.conf.py) and the app directory's config are
    read again, with the start's options still overriding them; each worker is then replaced
    by one that imports the app afresh. A config that cannot be read changes nothing: the
    running workers keep serving, and the reason is printed (exit 1) and logged.
    """
    base, found = find_one(run_dir, title)
    reply = ask(base, found.title, {"cmd": "reload"})
    read = "config read again; " if reply.get("config") else ""
    click.echo(f"sioctl: {found.title}: {read}rolling restart of {reply['workers']} workers "
               "started")
