"""The library contract's checks, run in a child interpreter (``python -m
tests.support.contract_checks`` from the repository root) since they import eventlet, which the
test process must not: eventlet hooks fork() in any process that imported it. Prints one JSON
object: the versions, each hook's problem ("" when none), and what the scans of sioctl's source
found (tests/support/contract_scan.py). tests/contract/test_library_contract.py reads it.
"""

from __future__ import annotations

import inspect
import json
import warnings
from importlib.metadata import version
from typing import Any

from sioctl.worker import library_contract as contract
from sioctl.worker.library_contract import HOOKS, Hook
from tests.support import contract_scan as scan
from tests.support.contract_layouts import LAYOUTS, instance_of, resolve


def _import_libraries() -> None:
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet  # noqa: F401
    import eventlet.hubs.hub  # noqa: F401
    import eventlet.websocket  # noqa: F401
    import eventlet.wsgi  # noqa: F401
    import gunicorn.app.base  # noqa: F401


def param_names(func: Any) -> tuple[str, ...]:
    """Parameter names of ``func`` as the contract writes them (no self)."""
    names = []
    for param in inspect.signature(func).parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            names.append(f"*{param.name}")
        elif param.kind is param.VAR_KEYWORD:
            names.append(f"**{param.name}")
        else:
            names.append(param.name)
    if names and names[0] == "self":
        names = names[1:]
    return tuple(names)


def check_hook(hook: Hook) -> str:
    """What is wrong with ``hook`` on the installed libraries ("" when nothing)."""
    try:
        if hook.kind == contract.LAYOUT:
            if hook.id not in LAYOUTS:
                return "no layout check for it in tests/support/contract_layouts.py"
            LAYOUTS[hook.id]()
            return ""
        try:
            member = resolve(hook.target)
        except AttributeError:
            if hook.params is not None or len(hook.path) < 2:
                raise
            owner = hook.target.rsplit(".", 1)[0]
            member = getattr(instance_of(owner), hook.name)  # an instance attribute
        if hook.params is not None:
            found = param_names(member)
            if found != hook.params:
                return f"parameters {found}, the contract relies on {hook.params}"
        return ""
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def child_main() -> None:
    """Check every hook and scan sioctl; print the findings as one JSON line."""
    _import_libraries()
    versions = {name: version(name) for name in contract.LIBRARIES.values()}
    owners = {}
    for hook in HOOKS:
        try:
            owner = resolve(hook.target.rsplit(".", 1)[0]) if len(hook.path) > 1 else None
            owners[hook.id] = scan.target_of(owner) if inspect.isclass(owner) else ""
        except (AttributeError, ImportError):
            owners[hook.id] = ""
    print(json.dumps({
        "versions": versions,
        "owners": owners,
        "problems": {hook.id: check_hook(hook) for hook in HOOKS},
        "private_names": scan.library_private_names(),
        "overrides": scan.library_overrides(),
        "unlisted_mixins": scan.unlisted_mixins(),
        "attribute_uses": scan.library_attribute_uses(),
    }))


if __name__ == "__main__":
    child_main()
