"""The ASGI lifespan of the app: startup before the worker says ready, shutdown while it drains.

Not uvicorn's LifespanOn: the worker needs the reason of a failed startup for its one-line
boot error (LifespanOn only logs it), and a bound on shutdown. As uvicorn's ``lifespan="auto"``,
an app that raises before it answers the startup event does not speak the lifespan protocol,
and runs without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sioctl.worker.errors import BootError

AsgiApp = Callable[..., Any]


class Lifespan:
    """Runs ``app``'s lifespan scope in a task and exchanges its events."""

    def __init__(self, app: AsgiApp, logger: logging.Logger) -> None:
        self._app = app
        self._logger = logger
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.supported = True
        # What the app put in scope["state"]; every request's scope gets a copy (ASGI spec).
        self.state: dict[str, Any] = {}

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer; raises BootError when the app
        says it failed (with its message) or raises while starting."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._events.put({"type": "lifespan.startup"})
        answer = await self._answers.get()
        if answer["type"] == "lifespan.startup.failed":
            raise BootError(f"the app's lifespan startup failed: {_reason(answer)}")
        if answer["type"] == "error" and self.supported:
            raise BootError(f"the app's lifespan startup failed: {_reason(answer)}")

    async def shutdown(self, timeout: float) -> None:
        """Send ``lifespan.shutdown`` and wait up to ``timeout`` seconds for the answer
        (a failure is logged: the worker exits either way)."""
        if not self.supported or self._task is None or self._task.done():
            return
        await self._events.put({"type": "lifespan.shutdown"})
        try:
            answer = await asyncio.wait_for(self._answers.get(), max(0.0, timeout))
        except asyncio.TimeoutError:
            self._logger.warning("the app's lifespan shutdown did not finish within %gs", timeout)
            return
        if answer["type"] != "lifespan.shutdown.complete":
            self._logger.error("the app's lifespan shutdown failed: %s", _reason(answer))

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}
        answered = False

        async def send(message: dict[str, Any]) -> None:
            nonlocal answered
            answered = True
            await self._answers.put(message)

        try:
            await self._app(scope, self._events.get, send)
        except BaseException as exc:  # noqa: BLE001 - reported to whoever waits
            if not answered:
                # Raised before any answer: an app without lifespan support (uvicorn "auto").
                self.supported = False
                self._logger.debug("the app does not support the ASGI lifespan: %r", exc)
            await self._answers.put({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
            if not isinstance(exc, Exception):
                raise


def _reason(answer: dict[str, Any]) -> str:
    text = str(answer.get("message") or "").strip()
    # Starlette sends the whole traceback as the message: its last line names the error.
    return text.splitlines()[-1] if text else "no reason given"
