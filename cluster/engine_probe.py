"""Resolve ``worker_class = "auto"`` to the engine the app needs, before any worker starts.

The eventlet worker must monkey-patch before it imports the app, so the engine cannot be
decided inside the worker. The master runs ``python -m sioctl.worker.probe`` (a fresh
interpreter that imports the app unpatched; the master itself never imports the app, nor
eventlet) and starts every worker on the answer; ``-k`` skips this. It runs once at boot, and
again on every HUP (``Reprobe``, without blocking the master's loop), so an app changed from
sync to async is served by the right engine after the rolling restart.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from typing import NamedTuple

from .reactor import Reactor
from .settings import ASYNCIO, AUTO, EVENTLET, SETTINGS_ENV, Settings

log = logging.getLogger("sioctl.master")

# How long the probe may take to import the app.
PROBE_TIMEOUT = 60.0
# Once the probe has written its answer (or closed its end), how long its exit may take.
EXIT_TIMEOUT = 5.0


class ProbeError(Exception):
    """The app cannot be served; the message is one line for the user."""


class Answer(NamedTuple):
    """What the probe found: the engine, why (for the log), and whether the app imported
    unpatched (False: the engine is eventlet's by default, a guess)."""

    engine: str
    why: str
    imported: bool = True


class Probe:
    """A running probe process and the read end of its result pipe (``fileno()``)."""

    def __init__(self, settings: Settings) -> None:
        read_end, write_end = os.pipe()
        env = dict(os.environ)
        env[SETTINGS_ENV] = settings.to_json()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sioctl.worker.probe", "--result-fd", str(write_end)],
                pass_fds=(write_end,), env=env, cwd=settings.chdir or None,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            os.close(read_end)
            raise ProbeError(f"cannot start the engine probe: {exc}") from exc
        finally:
            os.close(write_end)
        self.result = os.fdopen(read_end)
        self.timed_out = False

    def fileno(self) -> int:
        return self.result.fileno()

    def kill(self) -> None:
        """Stop a probe that takes too long (``answer`` then says so)."""
        self.timed_out = True
        self.process.kill()

    def answer(self, timeout: float) -> Answer:
        """Wait up to ``timeout`` for the probe to exit, then read its answer.

        Raises ProbeError when the app holds no server, or the probe dies or hangs."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait()
        with self.result:
            line = "" if self.timed_out else self.result.readline()
        if self.timed_out:
            raise ProbeError(f"importing the app took more than {PROBE_TIMEOUT:g}s (engine "
                             "probe); pass -k asyncio or -k eventlet")
        try:
            answer = json.loads(line)
        except ValueError:
            raise ProbeError(f"the engine probe exited with status {self.process.returncode} "
                             "without an answer; pass -k asyncio or -k eventlet") from None
        if "error" in answer:
            raise ProbeError(str(answer["error"]))
        engine = answer.get("engine")
        if engine not in (ASYNCIO, EVENTLET):
            raise ProbeError(f"the engine probe answered {line.strip()!r}")
        return Answer(engine, str(answer.get("what", "")), not answer.get("guess", False))


def resolve(settings: Settings, timeout: float = PROBE_TIMEOUT) -> tuple[str, str]:
    """(engine, why) for ``settings``: the engine -k named, else the one the probe found.

    Raises ProbeError when the app holds no server, or the probe dies or hangs.
    """
    if settings.worker_class != AUTO:
        return settings.worker_class, f"-k {settings.worker_class}"
    found = Probe(settings).answer(timeout)
    return found.engine, found.why


def describe(why: str) -> str:
    """``why`` with its article, for "the app is ..." log lines."""
    return f"{'an' if why[:1].lower() in 'aeiou' else 'a'} {why}"


class Reprobe:
    """Probe the app again on the master's loop, then call ``then(answer)`` (or ``then(None)``
    after logging, once, why the app cannot be served now)."""

    def __init__(self, reactor: Reactor, settings: Settings,
                 then: Callable[[Answer | None], None]) -> None:
        self.reactor = reactor
        self.then = then
        self.done = False
        try:
            self.probe: Probe | None = Probe(dataclasses.replace(settings, worker_class=AUTO))
        except ProbeError as exc:
            self.probe = None
            self._finish(None, str(exc))
            return
        reactor.watch(self.probe, self._readable)
        reactor.call_later("engine probe", PROBE_TIMEOUT, self.probe.kill)

    def _readable(self, fileobj: object, mask: int) -> None:
        # The answer is one short write followed by exit (or EOF if the probe died).
        assert self.probe is not None
        self.reactor.unwatch(self.probe)
        self.reactor.cancel("engine probe")
        try:
            found = self.probe.answer(EXIT_TIMEOUT)
        except ProbeError as exc:
            self._finish(None, str(exc))
        else:
            self._finish(found, "")

    def _finish(self, found: Answer | None, error: str) -> None:
        self.done = True
        if found is None:
            log.error("rolling restart stopped before it began, the app cannot be served "
                      "now: %s; the running workers keep serving", error)
        self.then(found)
