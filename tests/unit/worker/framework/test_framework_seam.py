"""The framework does not hard-code the gateway: it plugs in through the framework's hooks.

No module of ``worker/framework/`` imports ``sioctl.worker.gateway`` (read from the source, as
tests/e2e/test_no_eventlet_in_master.py reads the master's imports); the gateway arrives as one of
the plugin factories the worker hands to ``load_app_dir``, and the factory returns no plugin
when the app's config has no ``socket_config``.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from tests.support.paths import REPO_ROOT

FRAMEWORK = REPO_ROOT / "worker" / "framework"


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against the framework."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1:
                base = f"sioctl.worker.framework.{base}".rstrip(".")
            elif node.level == 2:
                base = f"sioctl.worker.{base}".rstrip(".")
            modules.add(base)
            modules.update(f"{base}.{alias.name}" for alias in node.names)
    return modules


def test_the_framework_imports_no_gateway_module() -> None:
    files = sorted(FRAMEWORK.glob("*.py"))
    assert FRAMEWORK / "application.py" in files
    offenders = {
        path.name: sorted(m for m in imported_modules(path)
                          if m.startswith(("sioctl.worker.gateway", "worker.gateway")))
        for path in files
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_the_worker_plugs_the_gateway_in() -> None:
    from sioctl.worker.framework.plugins import Plugin
    from sioctl.worker.gateway.mount import GatewayPlugin

    # Read from the source: importing worker/main.py would import eventlet into pytest. Both
    # engines' workers hand the same plugins to their shell's loader.
    for worker in ("main.py", "aio/appdir.py"):
        main = ast.parse((REPO_ROOT / "worker" / worker).read_text())
        [plugins] = [node.value for node in main.body if isinstance(node, ast.Assign)
                     and any(getattr(t, "id", None) == "PLUGINS" for t in node.targets)]
        assert isinstance(plugins, ast.Tuple)
        assert [getattr(e, "id", None) for e in plugins.elts] == ["gateway_plugin"]
        assert "from sioctl.worker.gateway.mount import gateway_plugin" in ast.unparse(main)
    assert issubclass(GatewayPlugin, Plugin)
    # Every hook the framework calls is one the gateway overrides.
    for hook in ("refuse", "connected", "disconnected", "routes", "wrap_wsgi", "redis_back"):
        assert getattr(GatewayPlugin, hook) is not getattr(Plugin, hook), hook


def test_the_asyncio_gateway_plugin_awaits_its_hooks() -> None:
    """On asyncio the gateway's hooks are coroutines (the eventlet shell would refuse them)
    and its HTTP endpoint is ASGI only."""
    from sioctl.worker.framework.plugins import ASYNC_HOOKS, Plugin
    from sioctl.worker.gateway.async_gateway import AsyncGatewayPlugin

    for hook in ASYNC_HOOKS:
        assert inspect.iscoroutinefunction(getattr(AsyncGatewayPlugin, hook)), hook
    assert AsyncGatewayPlugin.wrap_asgi is not Plugin.wrap_asgi
    assert AsyncGatewayPlugin.wrap_wsgi is Plugin.wrap_wsgi


# The engine-free core of the framework (docs/design.md §7, "Core and shells"): what both
# shells share. ids.py and session.py decide for both engines and hold the eventlet side's
# blocking Redis calls (their asyncio counterparts: ids.AsyncIdClaims, session_async.py).
CORE = ("core.py", "namespace.py", "onion.py", "routing.py", "context.py", "middleware.py",
        "controller.py", "config.py", "loading.py", "plugins.py")
SHELLS = {"application.py": "sioctl.worker.framework.aio",
          "aio.py": "sioctl.worker.framework.application"}


def test_the_core_names_no_engine_and_no_shell() -> None:
    for name in CORE:
        modules = imported_modules(FRAMEWORK / name)
        engine = sorted(m for m in modules if m.startswith((
            "eventlet", "asyncio", "sioctl.worker.framework.application",
            "sioctl.worker.framework.aio")))
        assert engine == [], name
        # python-socketio's refusal exception is shared by Server and AsyncServer.
        assert {m for m in modules if m.startswith("socketio")} <= {
            "socketio.exceptions", "socketio.exceptions.ConnectionRefusedError"}, name


def test_each_shell_stands_on_the_core_alone() -> None:
    for name, other in SHELLS.items():
        modules = imported_modules(FRAMEWORK / name)
        assert {"sioctl.worker.framework.core", "sioctl.worker.framework.namespace"} <= modules
        assert not any(m.startswith(other) for m in modules), name
