"""Work written once for both engines: a flow is a generator that yields each call that does
I/O (a registry operation, an emit, a room change, a Redis read) and gets back what the call
returned, or has its exception raised at the ``yield``. :func:`run` makes the calls as they
are (eventlet), :func:`arun` awaits what they return when it is awaitable (asyncio: the
``redis.asyncio`` registry, ``AsyncServer.emit``); the flows hold the order and the decisions.

Starting a background task is no I/O (``start_background_task`` is a plain call on both
servers, and what it returns must not be awaited): flows call it directly.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")
Call = Callable[[], Any]
Flow = Generator[Call, Any, T]


def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Call:
    """The call of ``function(*args, **kwargs)`` a flow yields."""
    return functools.partial(function, *args, **kwargs)


def run(flow: Flow[T]) -> T:
    """Run ``flow`` making each call as it is; its result."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.throw(error) if error is not None else flow.send(reply)
        except StopIteration as done:
            return done.value
        try:
            reply, error = step(), None
        except Exception as exc:
            reply, error = None, exc


async def arun(flow: Flow[T]) -> T:
    """Run ``flow`` awaiting what each call returns when it is awaitable; its result."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.throw(error) if error is not None else flow.send(reply)
        except StopIteration as done:
            return done.value
        try:
            reply, error = step(), None
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception as exc:
            reply, error = None, exc
