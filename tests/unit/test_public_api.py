"""The public API: what the README teaches is importable from ``sioctl`` itself, lazily.

``from sioctl import Controller`` and its longer, older path give the same object; the README,
the example app and the ``sioctl init`` skeleton import only the short form; and ``import
sioctl`` alone (which the master and the CLI do first) imports neither eventlet nor socket.io.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys

import pytest

import sioctl
from sioctl.cli import skeleton
from tests.support.paths import REPO_ROOT

# Public name -> the older module path it is also importable from.
OLD_PATHS = {
    "Controller": "sioctl.worker.framework",
    "session_cookie_header": "sioctl.worker.framework.session",
    "new_redis_session_cookie": "sioctl.worker.framework.session",
    "new_redis_session_cookie_async": "sioctl.worker.framework.session_async",
    "ExternalGateway": "sioctl.worker.gateway.external",
    "QueryTimeout": "sioctl.worker.messaging.manager",
    "start_cluster": "sioctl.cli.programmatic",
}
OLD_MODULES = {"gateway_wire": "sioctl.worker.gateway.wire"}

# An import statement in Python code (a README code block, an example, a skeleton template).
IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(sioctl[\w.]*)[ \t]+import[ \t]+([^\n#]+)|import[ \t]+"
                    r"(sioctl[\w.]*))", re.MULTILINE)
# A dotted path in the README's prose, such as `sioctl.worker.messaging.manager.QueryTimeout`.
DOTTED = re.compile(r"`(sioctl(?:\.\w+)+)(?:\([^`]*\))?`")

GREEN = ("eventlet", "greenlet")


def readme_code() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    return "\n".join(re.findall(r"```python\n(.*?)```", text, re.DOTALL))


def taught_sources() -> dict[str, str]:
    """Every piece of Python code a user copies: README blocks, the example app, the skeleton."""
    sources = {"README.md": readme_code()}
    for path in sorted((REPO_ROOT / "examples").rglob("*.py")):
        sources[str(path.relative_to(REPO_ROOT))] = path.read_text()
    for name, text in skeleton.files("secret-key").items():
        sources[f"sioctl init: {name}"] = text
    return sources


def imports_in(code: str) -> list[tuple[str, list[str]]]:
    """(module, [names]) for each sioctl import statement in ``code``; [] for ``import x``."""
    found = []
    for module, names, plain in IMPORT.findall(code):
        if plain:
            found.append((plain, []))
        else:
            names = names.strip().strip("()")
            found.append((module, [n.split(" as ")[0].strip() for n in names.split(",")]))
    return found


def test_public_names_are_the_objects_of_their_old_paths() -> None:
    assert sorted(sioctl.__all__) == sorted([*OLD_PATHS, *OLD_MODULES])
    for name, old in OLD_PATHS.items():
        assert getattr(sioctl, name) is getattr(importlib.import_module(old), name), name
    for name, old in OLD_MODULES.items():
        assert getattr(sioctl, name) is importlib.import_module(old), name
    # The wire format's former module name keeps every public name of it.
    old_wire = importlib.import_module("sioctl.worker.gateway.protocol")
    wire = sioctl.gateway_wire
    public = [n for n in vars(wire) if not n.startswith("_")]
    assert public and all(getattr(old_wire, n) is getattr(wire, n) for n in public)


def test_unknown_names_are_attribute_errors_and_dir_lists_the_public_ones() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        sioctl.Nope  # noqa: B018
    assert set(sioctl.__all__) <= set(dir(sioctl))
    namespace: dict[str, object] = {}
    exec("from sioctl import *", namespace)
    assert set(sioctl.__all__) <= set(namespace)


@pytest.mark.parametrize("where", sorted(taught_sources()))
def test_what_users_copy_imports_only_public_names(where: str) -> None:
    code = taught_sources()[where]
    for module, names in imports_in(code):
        assert module == "sioctl", f"{where} teaches `{module}`: import it from sioctl"
        for name in names:
            assert name in sioctl.__all__, f"{where} imports {name!r}, not in sioctl.__all__"
            namespace: dict[str, object] = {}
            exec(f"from sioctl import {name}", namespace)
            old = OLD_PATHS.get(name)
            if old is not None:  # and the same name the long way
                exec(f"from {old} import {name} as old", namespace)
                assert namespace["old"] is namespace[name]


def test_readme_prose_names_paths_that_resolve() -> None:
    """A dotted path quoted in the README is either public or an existing module/attribute."""
    paths = DOTTED.findall((REPO_ROOT / "README.md").read_text())
    assert "sioctl.session_cookie_header" in paths and "sioctl.QueryTimeout" in paths
    for path in paths:
        module, _, attribute = path.rpartition(".")
        try:
            importlib.import_module(path)
            continue
        except ImportError:
            pass
        assert hasattr(importlib.import_module(module), attribute), f"README names {path}"
        if module == "sioctl":
            assert attribute in sioctl.__all__, path


def modules_after(code: str) -> list[str]:
    """The eventlet/greenlet/socket.io modules a fresh interpreter holds after ``code``."""
    script = (f"import json, sys\n{code}\n"
              "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
              "{'eventlet', 'greenlet', 'socketio', 'engineio'})))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(modules, list)
    return modules


def test_import_sioctl_alone_imports_nothing_heavy() -> None:
    # The master and the CLI import the package first: no eventlet, not even socket.io.
    assert modules_after("import sioctl") == []
    assert modules_after("from sioctl import gateway_wire") == []


def test_every_public_name_stays_free_of_eventlet() -> None:
    # A cron job or web backend using ExternalGateway must not get eventlet's fork() hooks.
    loaded = modules_after("from sioctl import *")
    assert "socketio" in loaded  # the names are really imported...
    assert not [m for m in loaded if m.split(".")[0] in GREEN]  # ...without eventlet
