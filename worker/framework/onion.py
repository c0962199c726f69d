"""The onion: what a middleware chain means, whatever the engine calls it with.

A chain is an ordered list of ``(name, middleware)`` layers around an innermost step (the
controller for a packet; "accepted, now wait for the disconnect" for a connection). Each layer
gets ``(ctx, next)``; calling ``next()`` runs the rest of the chain, and the layer's code after
``next()`` runs once the rest has finished (Koa's onion, as in egg-socket.io). The rules, which
the sync shell (``middleware.run_chain``) and the async one (``aio.run_chain_async``) both apply
through :class:`Turn`:

- layers run in the configured order, their after-halves in reverse;
- a layer that returns without calling ``next()`` stops the chain: :class:`NextNotCalled`
  (a connection is refused, a packet dropped without an answer);
- calling ``next()`` twice is a bug in that layer: RuntimeError;
- anything a layer (or the innermost step) raises propagates out through the outer layers,
  unwinding them, to the shell (a connection refused with its message, a packet reported).

No I/O, no calls into the app: the shells call the layers.
"""

from __future__ import annotations


class NextNotCalled(Exception):
    """A middleware returned without calling ``next()``; ``name`` says which."""

    def __init__(self, name: str) -> None:
        super().__init__(f"middleware {name!r} returned without calling next()")
        self.name = name


class Turn:
    """One layer's turn in one run of a chain: whether it has called ``next()`` yet."""

    __slots__ = ("called", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.called = False

    def enter_next(self) -> None:
        """The layer calls ``next()``: fine the first time, RuntimeError the second."""
        if self.called:
            raise RuntimeError(f"middleware {self.name!r} called next() twice")
        self.called = True

    def returned(self) -> None:
        """The layer has returned: raises NextNotCalled when it never called ``next()``."""
        if not self.called:
            raise NextNotCalled(self.name)


def refusal_message(reason: BaseException | None) -> str:
    """What a client refused by its connection middleware is told (its ``connect_error``
    message): the exception's text, its type's name when it has none, and for a layer that
    skipped ``next()`` "connection refused: middleware 'x' returned without calling next()"."""
    if isinstance(reason, NextNotCalled):
        return f"connection refused: {reason}"
    if reason is None:
        return "connection refused"
    return str(reason) or type(reason).__name__
