"""The seam between the protocol rules' core and their engine shells holds: the modules of
worker/protocol/core/ import the standard library, python-engineio's and python-socketio's
packet codecs and exceptions, and each other; never eventlet, a server or session class of
either library, or the shells. So an asyncio engine can put its own shells over the same core.

Two routes: the import statements of every core module (read, not run: ``import engineio``'s
package runs python-engineio's ``__init__``, which loads its servers whatever the core asks
for), and a fresh interpreter that imports the whole core and must end without eventlet.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

CORE = REPO_ROOT / "worker" / "protocol" / "core"
CORE_PACKAGE = "sioctl.worker.protocol.core"

# What a core module may import besides the standard library and its own package: value codecs
# and the errors python-engineio turns into a 400.
ALLOWED_LIBRARY_MODULES = frozenset({
    "engineio.packet", "engineio.exceptions", "engineio.json", "socketio.packet",
})


def core_modules() -> list[Path]:
    return sorted(CORE.glob("*.py"))


def imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports, as absolute dotted names (``from engineio import packet``
    is ``engineio.packet``; ``from . import nesting`` is the core package's nesting)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = CORE_PACKAGE.split(".")[: len(CORE_PACKAGE.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if node.module is None or (node.level == 0 and base in ("engineio", "socketio")):
                # ``from . import x`` / ``from engineio import packet``: x may be a module.
                found.extend(f"{base}.{alias.name}" for alias in node.names)
            else:
                found.append(base)
    return found


def forbidden(module: str) -> bool:
    """Whether a core module may not import ``module``."""
    top = module.split(".")[0]
    if module.startswith(CORE_PACKAGE + ".") or module == CORE_PACKAGE:
        return False
    if module in ALLOWED_LIBRARY_MODULES:
        return False
    if top in ("__future__",) or top in sys.stdlib_module_names:
        return False
    return True


@pytest.mark.parametrize("path", core_modules(), ids=lambda path: path.name)
def test_core_module_imports_only_codecs_and_the_standard_library(path: Path) -> None:
    imports = imported_modules(path)
    assert not [m for m in imports if forbidden(m)], \
        f"{path.relative_to(REPO_ROOT)} imports past the seam"


def test_the_check_sees_what_a_shell_imports() -> None:
    """The same check on the shells finds their engine imports (so a pass means something)."""
    shell = REPO_ROOT / "worker" / "protocol" / "engineio_rules.py"
    imports = imported_modules(shell)
    assert "engineio.socket" in imports and forbidden("engineio.socket")
    assert "eventlet.hubs" in imports and forbidden("eventlet.hubs")
    assert forbidden("socketio.server") and forbidden("engineio.async_socket")
    assert forbidden("sioctl.worker.protocol.engineio_rules")
    assert not forbidden("engineio.packet") and not forbidden(CORE_PACKAGE + ".nesting")


IMPORT_CORE = """
import importlib, json, pkgutil, sys
import sioctl.worker.protocol.core as core
for info in pkgutil.iter_modules(core.__path__):
    importlib.import_module(f"{core.__name__}.{info.name}")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("eventlet", "greenlet"))))
"""


def test_importing_the_core_loads_no_eventlet() -> None:
    """(Importing the core runs ``sioctl.worker.protocol``'s ``__init__``, which loads the
    sync shells; they load eventlet only when a ping is scheduled under it.)"""
    result = subprocess.run([sys.executable, "-c", IMPORT_CORE], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], loaded
