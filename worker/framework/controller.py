"""Controllers: ``app/io/controller/**.py``, reached as ``app.io.controller.<file>.<action>``.

A controller file holds plain functions ``action(ctx)``, or one :class:`Controller` subclass
whose methods are the actions (``self.ctx``). Nested folders nest the names:
``app/io/controller/admin/user.py`` is ``app.io.controller.admin.user``.
"""

from __future__ import annotations

import inspect
import os
import types
from collections.abc import Callable
from typing import Any

from sioctl.worker.errors import BootError

from .context import Context
from .loading import load_module, python_files, relative

CONTROLLER_DIR = os.path.join("app", "io", "controller")


class Controller:
    """Base class of class-based controllers: each action is a method using ``self.ctx``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.app = ctx.app


class Action:
    """A routable controller action: call it with a ctx to run it. ``function`` is the function
    or ``Controller`` method the app wrote (the engine checks whether it is ``async def``)."""

    def __init__(self, name: str, run: Callable[[Context], Any],
                 function: Callable[..., Any] | None = None) -> None:
        self.name = name
        self._run = run
        self.function = function or run

    def __call__(self, ctx: Context) -> Any:
        return self._run(ctx)

    def __repr__(self) -> str:
        return f"<action {self.name}>"


class ControllerFile:
    """The actions of one controller file, as attributes."""

    def __init__(self, name: str, module: types.ModuleType, rel: str) -> None:
        self._name = name
        self._rel = rel
        self._actions: dict[str, Action] = {}
        classes = [
            obj for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, Controller) and obj is not Controller
            and obj.__module__ == module.__name__
        ]
        if len(classes) > 1:
            names = ", ".join(c.__name__ for c in classes)
            raise BootError(f"{rel}: one Controller subclass per file, found {names}")
        if classes:
            cls = classes[0]
            for attr, _member in inspect.getmembers(cls, inspect.isfunction):
                if not attr.startswith("_") and attr not in vars(Controller):
                    self._actions[attr] = Action(f"{name}.{attr}", _method_runner(cls, attr),
                                                 getattr(cls, attr))
        else:
            for attr, member in vars(module).items():
                if (inspect.isfunction(member) and not attr.startswith("_")
                        and member.__module__ == module.__name__):
                    self._actions[attr] = Action(f"{name}.{attr}", member)

    def __getattr__(self, attr: str) -> Action:
        if attr.startswith("_"):
            raise AttributeError(attr)
        try:
            return self._actions[attr]
        except KeyError:
            known = ", ".join(sorted(self._actions)) or "none"
            raise BootError(
                f"app.io.controller.{self._name} has no action {attr!r} "
                f"({self._rel} defines: {known})"
            ) from None


def _method_runner(cls: type[Controller], method: str) -> Callable[[Context], Any]:
    def run(ctx: Context) -> Any:
        return getattr(cls(ctx), method)()

    return run


class ControllerTree:
    """``app.io.controller``: controller files and folders by attribute."""

    def __init__(self, name: str = "") -> None:
        self._name = name
        self._children: dict[str, ControllerFile | ControllerTree] = {}

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        try:
            return self._children[attr]
        except KeyError:
            where = f"app.io.controller{'.' + self._name if self._name else ''}"
            known = ", ".join(sorted(self._children)) or "none"
            raise BootError(f"{where} has no controller {attr!r} (found: {known})") from None


def load_controllers(app_dir: str) -> ControllerTree:
    """Import every controller file of the app; raises BootError naming a broken file."""
    root = ControllerTree()
    base = os.path.join(app_dir, CONTROLLER_DIR)
    for path in python_files(base):
        parts = os.path.relpath(path, base)[: -len(".py")].split(os.sep)
        node = root
        for i, part in enumerate(parts[:-1]):
            child = node._children.get(part)
            if not isinstance(child, ControllerTree):
                child = ControllerTree(".".join(parts[: i + 1]))
                node._children[part] = child
            node = child
        module = load_module(app_dir, path)
        node._children[parts[-1]] = ControllerFile(".".join(parts), module, relative(app_dir, path))
    return root
