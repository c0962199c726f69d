"""``python -m sioctl.worker.probe --result-fd N``: the engine the app needs, by importing it.

The eventlet worker monkey-patches before it imports the app, so the engine has to be known
before any worker starts. The master (cluster/engine_probe.py) runs this once, unless
``-k/--worker-class`` names the engine: it imports the app unpatched, as the asyncio worker
would, and writes one JSON line to the result fd: ``{"engine": "asyncio" | "eventlet", "what":
"..."}``. An app directory (the egg-style framework) is asyncio's when its ``app/`` code has an
``async def`` (a controller, a middleware awaiting ``next()``, a route, an ASGI ``http.py``),
found by compiling its files without running them; eventlet's when all of it is plain. An app
that cannot be imported unpatched (an eventlet app that builds a RedisManager at import time
needs the patched socket module) is eventlet's: the eventlet worker then imports it as it always
did, and reports its own boot error if it still fails. Only an app holding no server at all is
an error here (``{"error": "..."}``), the same one a worker would report.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from sioctl.cluster.settings import ASYNCIO, EVENTLET
from sioctl.worker import app_loader, boot
from sioctl.worker.errors import BootError
from sioctl.worker.framework.loading import async_functions


def probe() -> dict[str, Any]:
    """The engine the app of the worker settings needs, as the result line says it."""
    try:
        settings = boot.read_settings()
        boot.prepare_environment(settings)
    except BootError as exc:
        return {"error": str(exc)}
    if os.path.isabs(settings.app) and os.path.isdir(settings.app):
        return app_dir_engine(settings.app)
    try:
        obj = app_loader.load_object(settings.app)
    except BootError as exc:
        # A guess: the master keeps a running engine on it (cluster/engine_probe.py).
        return {"engine": EVENTLET, "what": f"not importable without eventlet ({exc})",
                "guess": True}
    engine, what = app_loader.engine_of(obj)
    if engine is None:
        return {"error": f"cannot load app {settings.app!r}: {what}"}
    return {"engine": engine, "what": what}


def app_dir_engine(app_dir: str) -> dict[str, Any]:
    """The result line for an app directory: asyncio when it has an ``async def``."""
    found = async_functions(app_dir)
    if found:
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        return {"engine": ASYNCIO, "what": f"app directory with async def ({found[0]}{more})"}
    return {"engine": EVENTLET, "what": "app directory of plain functions"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sioctl.worker.probe")
    parser.add_argument("--result-fd", type=int, required=True)
    result_fd = parser.parse_args().result_fd
    try:
        answer = probe()
    except BaseException as exc:  # the app's import may raise anything
        answer = {"engine": EVENTLET, "what": f"probe failed: {type(exc).__name__}",
                  "guess": True}
    assert answer.get("engine") in (None, ASYNCIO, EVENTLET)
    with os.fdopen(result_fd, "w") as out:
        out.write(json.dumps(answer) + "\n")
    # Leave without running the app's atexit handlers or waiting for threads it started.
    boot.exit_now(0)


if __name__ == "__main__":
    main()
