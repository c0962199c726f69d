"""Pure-Python parts of the worker: spec parsing, app loading, url masking, small helpers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import engineio
import pytest
import socketio

from sioctl.cluster.settings import mask_url
from sioctl.worker import app_loader
from sioctl.worker.addresses import parse_address
from sioctl.worker.errors import BootError
from sioctl.worker.gate import DrainGate
from sioctl.worker.protocol.ping_interval import advertised_ping_interval


@pytest.fixture
def app_module(tmp_path, monkeypatch):
    """Write a module into a temp dir on sys.path; returns a function(name, source)."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return write


def test_split_spec_forms():
    assert app_loader.split_spec("pkg.mod:sio") == ("pkg.mod", "sio", False)
    assert app_loader.split_spec("mod:holder.sio") == ("mod", "holder.sio", False)
    assert app_loader.split_spec("mod:create()") == ("mod", "create", True)
    assert app_loader.split_spec("mod") == ("mod", "app", False)


@pytest.mark.parametrize("spec", [":sio", "mod:", "mod:a-b", "mod:x(1)"])
def test_split_spec_rejects_bad_shapes(spec):
    with pytest.raises(BootError, match="expected MODULE:ATTRIBUTE"):
        app_loader.split_spec(spec)


def test_missing_module_names_the_spec():
    with pytest.raises(BootError) as info:
        app_loader.load_app("sioctl_no_such_module:sio")
    assert str(info.value) == (
        "cannot load app 'sioctl_no_such_module:sio': No module named 'sioctl_no_such_module'"
    )


def test_missing_attribute(app_module):
    name = app_module("m_attr", "x = 1\n")
    with pytest.raises(BootError, match=r"module 'm_attr' has no attribute 'sio'"):
        app_loader.load_app(f"{name}:sio")


def test_module_that_raises_gives_one_line(app_module):
    name = app_module("m_raises", "raise RuntimeError('boom\\nsecond line')\n")
    with pytest.raises(BootError) as info:
        app_loader.load_app(f"{name}:sio")
    assert str(info.value) == f"cannot load app '{name}:sio': RuntimeError: boom"


def test_no_server_inside(app_module):
    name = app_module("m_plain", "def app(environ, start_response):\n    return []\n")
    with pytest.raises(BootError, match="no socketio.Server or engineio.Server found"):
        app_loader.load_app(f"{name}:app")


def test_wrong_async_mode_is_a_boot_error(app_module):
    name = app_module(
        "m_threading", "import socketio\nsio = socketio.Server(async_mode='threading')\n"
    )
    expected = "async_mode 'threading'; sioctl needs async_mode='eventlet'"
    with pytest.raises(BootError, match=expected):
        app_loader.load_app(f"{name}:sio")


def test_find_server_through_wrappers():
    sio = socketio.Server(async_mode="threading")
    wsgi = socketio.WSGIApp(sio)

    class Middleware:
        def __init__(self, app):
            self.app = app

        def __call__(self, environ, start_response):
            return self.app(environ, start_response)

    assert app_loader.find_server(sio) is sio
    assert app_loader.find_server(wsgi) is sio
    assert app_loader.find_server(Middleware(Middleware(wsgi))) is sio
    assert app_loader.find_server(object()) is None


def test_find_servers_engine_only_and_beside():
    """A bare engineio.Server is found (and served through engineio.WSGIApp); one mounted
    beside a socketio.Server is found with it, the socketio.Server's own engine first."""
    eio = engineio.Server(async_mode="eventlet")
    assert app_loader.find_servers(eio) == (None, [eio])
    raw = engineio.Server(async_mode="eventlet")
    sio = socketio.Server(async_mode="eventlet")
    mixed = engineio.WSGIApp(raw, socketio.WSGIApp(sio), engineio_path="raw")
    server, engines = app_loader.find_servers(mixed)
    assert server is sio and set(map(id, engines)) == {id(raw), id(sio.eio)}
    loaded = app_loader.LoadedApp(mixed, server, engines)
    assert loaded.engines == [sio.eio, raw]


def test_load_bare_engineio_server(app_module):
    name = app_module("m_engine", "import engineio\neio = engineio.Server(async_mode='eventlet')\n")
    loaded = app_loader.load_app(f"{name}:eio")
    assert loaded.server is None and len(loaded.engines) == 1
    assert isinstance(loaded.wsgi_app, engineio.WSGIApp)


def test_engineio_wrong_async_mode_is_a_boot_error(app_module):
    name = app_module(
        "m_engine_threading", "import engineio\neio = engineio.Server(async_mode='threading')\n"
    )
    with pytest.raises(BootError, match="its engineio.Server uses async_mode 'threading'"):
        app_loader.load_app(f"{name}:eio")


def test_find_server_is_bounded():
    class Node:
        def __init__(self, child):
            self.app = child

    sio = socketio.Server(async_mode="threading")
    deep = sio
    for _ in range(app_loader.SEARCH_DEPTH + 2):
        deep = Node(deep)
    assert app_loader.find_server(deep) is None


def test_dotted_attribute_and_factory(app_module):
    name = app_module(
        "m_factory",
        """
        import socketio

        class Holder:
            sio = socketio.Server(async_mode='threading')

        def create():
            return socketio.WSGIApp(Holder.sio)
        """,
    )
    assert isinstance(app_loader.load_object(f"{name}:Holder.sio"), socketio.Server)
    assert isinstance(app_loader.load_object(f"{name}:create()"), socketio.WSGIApp)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:secret@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:secret@h/1", "redis://user:***@h/1"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("unix:///run/r.sock?password=secret&db=1", "unix:///run/r.sock?password=***&db=1"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked
    assert "secret" not in mask_url(url)


def test_advertised_ping_interval_keeps_fractions():
    eio = engineio.Server(async_mode="threading", ping_interval=0.3)
    assert advertised_ping_interval(eio) == 300
    eio = engineio.Server(async_mode="threading", ping_interval=(25, 5))
    assert advertised_ping_interval(eio) == 30000


def test_parse_address():
    assert parse_address(["10.0.0.1", 80]) == ("10.0.0.1", 80)
    for bad in ("x", ["h"], ["h", "80"], [1, 2], ["h", True], None):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_units_do_not_import_eventlet():
    # eventlet hooks fork() in any process that imports it, so these modules must stay
    # importable without it (checked in a fresh interpreter: other tests may import it).
    code = (
        "import sys\n"
        "import sioctl.worker.app_loader, sioctl.worker.redis_setup, sioctl.worker.protocol\n"
        "import sioctl.worker.gate, sioctl.worker.addresses\n"
        "assert 'eventlet' not in sys.modules, 'eventlet imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_drain_gate_refuses_only_new_sessions():
    calls = []

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    gate = DrainGate(app)

    def start_response(status, headers, exc_info=None):
        calls.append(status)

    assert gate({"QUERY_STRING": "EIO=4&transport=polling"}, start_response) == [b"ok"]
    gate.draining = True
    gate({"QUERY_STRING": "EIO=4&transport=polling"}, start_response)
    assert gate({"QUERY_STRING": "EIO=4&transport=polling&sid=abc"}, start_response) == [b"ok"]
    assert calls == ["200 OK", "503 Service Unavailable", "200 OK"]
