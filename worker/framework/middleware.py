"""Middleware: ``app/io/middleware/<name>.py`` exports a factory ``<name>(app)`` that returns
``middleware(ctx, next)``. Chains run Koa-style (the rules are in :mod:`.onion`): each layer
calls ``next()`` to run the rest, and its code after ``next()`` runs once the rest has finished.
:func:`run_chain` is the sync shell; ``aio.run_chain_async`` the async one."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sioctl.worker.errors import BootError

from .context import Context
from .loading import load_module, python_files, relative
from .onion import NextNotCalled, Turn

if TYPE_CHECKING:
    from .core import AppCore

__all__ = ["MIDDLEWARE_DIR", "Middleware", "NextNotCalled", "load_factories", "run_chain"]

MIDDLEWARE_DIR = os.path.join("app", "io", "middleware")

# next() returns None on eventlet, an awaitable on asyncio.
Middleware = Callable[[Context, Callable[[], Any]], Any]


def load_factories(app_dir: str) -> dict[str, Callable[[AppCore], Middleware]]:
    """Every middleware factory of the app by name; raises BootError naming a broken file."""
    factories = {}
    base = os.path.join(app_dir, MIDDLEWARE_DIR)
    for path in python_files(base):
        name = os.path.basename(path)[: -len(".py")]
        module = load_module(app_dir, path)
        factory = getattr(module, name, None)
        if not callable(factory):
            raise BootError(f"{relative(app_dir, path)}: define a factory {name}(app) that "
                            "returns middleware(ctx, next)")
        factories[name] = factory
    return factories


def run_chain(
    layers: list[tuple[str, Middleware]], ctx: Context, innermost: Callable[[], None]
) -> None:
    """Run ``layers`` around ``innermost`` by plain calls (the sync shell of :mod:`.onion`);
    raises NextNotCalled when a layer skips ``next()``.

    Exceptions from any layer propagate to the caller (after unwinding the outer layers).
    """

    def call(index: int) -> None:
        if index == len(layers):
            innermost()
            return
        name, middleware = layers[index]
        turn = Turn(name)

        def next_() -> None:
            turn.enter_next()
            call(index + 1)

        middleware(ctx, next_)
        turn.returned()

    call(0)
