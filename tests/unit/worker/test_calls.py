"""worker/calls.py: a WSGI layer called as a bound method does what calling it does."""

from __future__ import annotations

import types
from typing import Any

from sioctl.worker.calls import direct_call


class Layer:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return [self.tag.encode(), environ["PATH_INFO"].encode()]


class Inherited(Layer):
    pass


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    return [b"function"]


def test_an_instance_becomes_its_class_call_bound_to_it() -> None:
    for layer in (Layer("own"), Inherited("inherited")):
        call = direct_call(layer)
        assert isinstance(call, types.MethodType) and call.__self__ is layer
        assert call({"PATH_INFO": "/x"}, None) == layer({"PATH_INFO": "/x"}, None)


def test_functions_methods_and_c_callables_are_kept() -> None:
    bound = Layer("m").__call__
    assert direct_call(app) is app
    assert direct_call(bound) is bound
    assert direct_call(len) is len
