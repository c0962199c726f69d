"""An event's handler run in a green thread of its own, started at once (eventlet).

python-socketio runs each event's handler in a green thread of its own (``async_handlers``):
``start_background_task`` is eventlet's ``spawn``, which builds a ``GreenThread`` (a greenlet
and its exit event) and schedules a hub timer that switches to it once the reader has gone
back to the hub. Under an echo load that was a sixth of a worker's CPU: the spawn, the timer,
two more switches through the hub per message (docs/benchmarks-optimizations.md, "Eventlet
echo CPU").

:func:`run_now` gives the handler a bare greenlet and switches to it at once from the green
thread that read the event (its *caller*); what the handler does without waiting (decode,
dispatch, the ack written straight to the socket) runs before the caller reads on. The
semantics stay python-socketio's: the moment the handler waits (a socket, a lock, a sleep),
eventlet's hub asks the greenlet's ``switch_out`` first, which schedules the caller to go on
from the hub, so a slow handler never holds up that client's next events. A handler that
ends without waiting returns to its caller directly; one that waited ends in the hub.

An exception out of a handler is printed as eventlet prints one out of a spawned green
thread, and never reaches the caller. Importing this module does not import eventlet.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from typing import Any


@cache
def _green() -> tuple[Any, Any, Any]:
    """The greenlet class of :func:`run_now`'s handlers, ``greenlet.getcurrent`` and eventlet's
    ``get_hub`` (on first use: importing this module must not import eventlet or greenlet)."""
    import greenlet
    from eventlet.hubs import get_hub

    class _HandlerGreenlet(greenlet.greenlet):
        """One handler's green thread (see the module); its caller goes on when it first waits."""

        def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], caller: Any,
                     hub: Any) -> None:
            super().__init__(parent=caller)
            self._call: Any = (fn, args)
            self._caller: Any = caller
            self._hub = hub

        def run(self) -> None:
            fn, args = self._call
            self._call = None
            try:
                fn(*args)
            except greenlet.GreenletExit:
                pass
            except BaseException:
                # As eventlet does for a spawned green thread that raises (the hub prints it),
                # without raising into the caller (the reader, while the handler has not waited).
                self._hub.squelch_timer_exception(None, sys.exc_info())

        def switch_out(self) -> None:
            """eventlet's hub calls this as the handler waits: the caller goes on (once), from
            the hub; the handler's end then goes to the hub (``hub.switch`` makes it the
            parent)."""
            caller, self._caller = self._caller, None
            if caller is not None:
                self._hub.schedule_call_global(0, _resume, caller)

    return _HandlerGreenlet, greenlet.getcurrent, get_hub


def run_now(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` in a green thread of its own, starting now (see the module): returns
    when it has ended or first waits."""
    handler_class, getcurrent, get_hub = _green()
    hub = get_hub()
    caller = getcurrent()
    if caller is hub.greenlet:  # a hub callback: it must not run a handler inline
        from eventlet import spawn_n

        spawn_n(fn, *args)
        return
    handler_class(fn, args, caller, hub).switch()


def _resume(caller: Any) -> None:
    if not caller.dead:
        caller.switch()
