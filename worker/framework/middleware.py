"""Middleware: ``app/io/middleware/<name>.py`` exports a factory ``<name>(app)`` that returns
``middleware(ctx, next)``. Chains run Koa-style: each layer calls ``next()`` to run the rest, and
its code after ``next()`` runs once the rest has finished."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sioctl.worker.errors import BootError

from .context import Context
from .loading import load_module, python_files, relative

if TYPE_CHECKING:
    from .application import Application

MIDDLEWARE_DIR = os.path.join("app", "io", "middleware")

Middleware = Callable[[Context, Callable[[], None]], Any]


class NextNotCalled(Exception):
    """A middleware returned without calling ``next()``; ``name`` says which."""

    def __init__(self, name: str) -> None:
        super().__init__(f"middleware {name!r} returned without calling next()")
        self.name = name


def load_factories(app_dir: str) -> dict[str, Callable[[Application], Middleware]]:
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
    """Run ``layers`` around ``innermost``; raises NextNotCalled when a layer skips ``next()``.

    Exceptions from any layer propagate to the caller (after unwinding the outer layers).
    """

    def call(index: int) -> None:
        if index == len(layers):
            innermost()
            return
        name, middleware = layers[index]
        called = False

        def next_() -> None:
            nonlocal called
            if called:
                raise RuntimeError(f"middleware {name!r} called next() twice")
            called = True
            call(index + 1)

        middleware(ctx, next_)
        if not called:
            raise NextNotCalled(name)

    call(0)
