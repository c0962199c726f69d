"""Load the app's own Python files (controllers, middleware, router) by path."""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import types

from sioctl.worker.errors import BootError

# Modules of the app get names under this package, so they never clash with the user's own
# top-level modules (an app is free to have an app.py or a chat.py of its own).
MODULE_PREFIX = "sioctl_app"


def relative(app_dir: str, path: str) -> str:
    return os.path.relpath(path, app_dir)


def load_module(app_dir: str, path: str) -> types.ModuleType:
    """Import the file at ``path``; any error is a BootError naming the file."""
    rel = relative(app_dir, path)
    name = MODULE_PREFIX + "." + rel[: -len(".py")].replace(os.sep, ".")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BootError(f"{rel}: cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise BootError(f"{rel}: {type(exc).__name__}: {exc}") from exc
    return module


def python_files(directory: str) -> list[str]:
    """The .py files under ``directory``, recursively, in a stable order (none if it is absent)."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        found += [os.path.join(root, f) for f in sorted(files)
                  if f.endswith(".py") and not f.startswith("_")]
    return found


def async_functions(app_dir: str) -> list[str]:
    """``file: function`` for every ``async def`` in the app's Python files under ``app/``
    (nested ones included, as a middleware factory's inner middleware), found by compiling
    them, not running them: the engine probe decides an app directory's engine before any of
    its code may run. A file that does not compile is skipped (the worker reports it)."""
    found: list[str] = []
    for path in python_files(os.path.join(app_dir, "app")):
        try:
            with open(path, encoding="utf-8") as source:
                code = compile(source.read(), path, "exec", dont_inherit=True)
        except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
            continue
        found += [f"{relative(app_dir, path)}: {name}" for name in _coroutines(code)]
    return found


def _coroutines(code: types.CodeType) -> list[str]:
    names = []
    pending = [code]
    while pending:
        current = pending.pop()
        if current.co_flags & (inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
            names.append(current.co_qualname if hasattr(current, "co_qualname")
                         else current.co_name)
        pending += [c for c in current.co_consts if isinstance(c, types.CodeType)]
    return sorted(names)
