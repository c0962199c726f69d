"""The library contract (worker/library_contract.py) holds on the installed libraries, and lists
everything sioctl relies on.

One test per entry: the member exists where the entry says, a callable has the parameter names
the entry gives, an instance attribute is there on a real object, and a data layout holds on
small real objects (tests/support/contract_layouts.py). An upgrade that changes any of them
fails in the test named after the hook. The checks run in a child interpreter
(tests/support/contract_checks.py), since they import eventlet; the completeness tests compare
the contract with what a scan of sioctl's source finds (tests/support/contract_scan.py).
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from typing import Any

import pytest

from sioctl.worker import library_contract as contract
from sioctl.worker.library_contract import HOOKS, Hook
from tests.support import contract_scan as scan

ROOT = scan.ROOT

STDLIB_PRIVATE = {"_exit", "_debugmallocstats"}

DOCUMENTED = {
    # python-socketio's API reference: Server.sleep, start_background_task; eio, manager and
    # logger hold what its constructor documents (client_manager, logger).
    "socketio.server:Server": {"sleep", "start_background_task", "eio", "manager", "logger"},
    # python-engineio's API reference: Server.create_event; logger and ping_timeout are
    # constructor arguments.
    "engineio.server:Server": {"create_event", "logger", "ping_timeout"},
    # The same documented API on the asyncio classes.
    "socketio.async_server:AsyncServer": {"sleep", "start_background_task", "eio", "manager",
                                          "logger"},
    "engineio.async_server:AsyncServer": {"create_event", "logger", "ping_timeout"},
    # http.server.BaseHTTPRequestHandler's documented attributes, which HttpProtocol keeps.
    "eventlet.wsgi:HttpProtocol": {"rfile", "server", "request_version"},
    "eventlet.wsgi:Input": {"read"},  # the WSGI input stream
}

OWN_NAMES: dict[str, str] = {
    "_send": "Gateway._send (worker/gateway/plugin.py), not RFC6455WebSocket._send",
    "_init": "egg_names._init (worker/framework/egg_names.py), not eventlet's LightQueue._init",
    "_put": "form._put (worker/gateway/form.py), not eventlet's LightQueue._put",
    "_sock": "the socket AsyncChannel (worker/aio/channel.py) and ws_reads.BufferedReads "
             "hold, not eventlet's GreenSocket._sock",
    "_closed": "ws_reads.BufferedReads._closed, not eventlet's GreenSSLSocket._closed",
    "_accept": "the asyncio worker's standalone accept loop (worker/aio/main.py), not "
               "eventlet's GreenSSLSocket._accept",
}


@pytest.fixture(scope="module", name="checked")
def checked_fixture() -> dict[str, Any]:
    """The child interpreter's findings (tests/support/contract_checks.py)."""
    proc = subprocess.run([sys.executable, "-m", "tests.support.contract_checks"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("hook", HOOKS, ids=lambda hook: hook.id)
def test_hook_holds(hook: Hook, checked: dict[str, Any]) -> None:
    """The member exists with the parameters (or the layout) sioctl relies on."""
    problem = checked["problems"][hook.id]
    version = checked["versions"][hook.library]
    assert not problem, (
        f"{hook.library} {version}: {hook.id}, relied on by {', '.join(hook.used_in)}"
        f"{' (' + hook.note + ')' if hook.note else ''}: {problem}")


def test_entries_are_well_formed() -> None:
    ids = [hook.id for hook in HOOKS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for hook in HOOKS:
        assert hook.kind in contract.KINDS, hook
        assert (hook.params is None) == (hook.kind in (contract.ATTRIBUTE, contract.LAYOUT)), hook
        assert hook.used_in, hook
        for where in hook.used_in:
            text = (ROOT / where).read_text()
            if hook.kind != contract.LAYOUT:  # a layout may be relied on without its name
                # The member's name, or its class's (``Socket(server, sid)``).
                assert any(name in text for name in hook.path if name != "__init__"), \
                    f"{hook.id}: not mentioned in {where}"
    for mixin, target in contract.MIXINS.items():
        module, _, name = mixin.partition(":")
        assert hasattr(importlib.import_module(module), name), mixin
        assert any(hook.target.startswith(target + ".") for hook in HOOKS), target


def test_every_library_private_name_sioctl_uses_is_listed(checked: dict[str, Any]) -> None:
    """A name private to a library class the contract names (a method, an attribute), used
    anywhere in sioctl (called, overridden, read, or as a string), is in the contract."""
    listed = {hook.name for hook in HOOKS}
    uses, _, _ = scan.private_uses()
    library = checked["private_names"]
    missing = {name: (library[name], uses[name][:3]) for name in uses
               if name in library and name not in listed and name not in OWN_NAMES}
    assert not missing, f"not in worker/library_contract.py: {missing}"
    _, _, defined = scan.private_uses()
    assert set(OWN_NAMES) <= defined, "OWN_NAMES lists a name sioctl does not define"


def test_every_private_attribute_not_defined_by_sioctl_is_listed() -> None:
    """``x._name`` where sioctl defines no ``_name`` itself belongs to a library: listed."""
    listed = {hook.name for hook in HOOKS}
    _, accesses, defined = scan.private_uses()
    missing = {name: where[:3] for name, where in accesses.items()
               if name not in defined and name not in listed and name not in STDLIB_PRIVATE}
    assert not missing, f"not in worker/library_contract.py: {missing}"


def test_every_library_method_sioctl_overrides_is_listed(checked: dict[str, Any]) -> None:
    """A method a sioctl class (or a mixin put on a library class) redefines is listed as an
    override (or patch) of that library class or one of its bases."""
    missing = []
    for found in checked["overrides"]:
        if not any(hook.kind in (contract.OVERRIDE, contract.PATCH)
                   and hook.name == found["method"]
                   and checked["owners"][hook.id] in found["mro"] for hook in HOOKS):
            missing.append(f"{found['class']}.{found['method']} overrides {found['library']}")
    assert not missing, f"not in worker/library_contract.py: {missing}"


def test_every_undocumented_library_attribute_a_subclass_uses_is_listed(
        checked: dict[str, Any]) -> None:
    """What a sioctl subclass or mixin reads from its library class through ``self`` (an
    undocumented attribute like ``Socket.upgrading``, a base-class call like
    ``PubSubManager.is_connected``) is in the contract, unless it is documented API."""
    missing = []
    for use in checked["attribute_uses"]:
        name = use["attribute"]
        if any(name in DOCUMENTED.get(owner, ()) for owner in use["mro"]):
            continue
        if not any(hook.name == name and checked["owners"][hook.id] in use["mro"]
                   for hook in HOOKS):
            missing.append(f"{use['class']} uses {use['library']}.{name}")
    assert not missing, f"not in worker/library_contract.py: {missing}"


def test_every_mixin_names_its_library_class(checked: dict[str, Any]) -> None:
    """A class calling super() for a method no base of its own has is a mixin for a library
    class: MIXINS says which, so its overrides are checked."""
    assert not checked["unlisted_mixins"], checked["unlisted_mixins"]


def test_contract_libraries_are_pinned_both_ways() -> None:
    """Every library in the contract has a lower and an upper bound in pyproject.toml, and
    scripts/lowest_pins.py (what CI installs into .venv-lowest) gives the lower bounds."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    for name in contract.LIBRARIES.values():
        # A minor release cap (<5.19), or gunicorn's next release series (<28: its releases
        # go 23, 24, ...).
        cap = r"[0-9]+" if name == "gunicorn" else r"[0-9]+\.[0-9]+"
        assert re.search(rf'"{name}>=[0-9.]+,<{cap}"', pyproject), f"{name} is not capped"
    proc = subprocess.run([sys.executable, "scripts/lowest_pins.py"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    pins = proc.stdout.split()
    assert {pin.split("==")[0] for pin in pins} == {
        "python-socketio", "python-engineio", "eventlet"}, pins
    for pin in pins:
        name, lowest = pin.split("==")
        assert f'"{name}>={lowest},<' in pyproject, pin


def test_the_scan_sees_the_known_hooks(checked: dict[str, Any]) -> None:
    """The completeness scans find what they must (so an empty result means something)."""
    overridden = {(o["class"].split(":")[1], o["method"]) for o in checked["overrides"]}
    assert ("ConformantSocket", "_websocket_handler") in overridden
    assert ("ConformantEngineMixin", "_service_task") in overridden
    assert ("ConformantServerMixin", "_handle_eio_message") in overridden
    assert ("TimedProtocol", "get_environ") in overridden
    assert ("_Loader", "load_config") in overridden
    used = {(u["class"].split(":")[1], u["attribute"]) for u in checked["attribute_uses"]}
    assert ("ConformantSocket", "upgrading") in used
    assert ("SioctlManagerBase", "json") in used  # the mixin before PubSubManager
    uses, accesses, _ = scan.private_uses()
    assert "_log_error_once" in accesses and "_apply_mask" in uses
    assert {"_handle_connect", "_bad_request", "_binary_packet"} <= set(checked["private_names"])
