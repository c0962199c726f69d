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

**Handler greenlets are reused.** A greenlet that ends costs ~7 µs on Python 3.11, most of it
the interpreter's frame stack: each new greenlet maps a 16 KiB chunk for its frames on its first
call and unmaps it when it ends (an ``mmap`` and a ``munmap`` per event, ~15% of an echo).
A handler's greenlet therefore waits for the next event instead of ending (at most
``IDLE_HANDLERS`` wait), and each handler still starts as it would on a new one: in a new, empty
``contextvars.Context`` (a new greenlet's). A greenlet that something tracks by weak reference
after its handler ends (eventlet's green ``threading.local`` does, per greenlet) or that got
attributes of its own ends instead, so green-thread-local values never pass from one event's
handler to the next.
"""

from __future__ import annotations

import contextvars
import sys
import weakref
from collections.abc import Callable
from functools import cache
from typing import Any

# How many handler greenlets may wait for an event per worker. A handler that does not wait
# ends before its reader reads on, so one is enough for those; the others serve handlers that
# overlap because they wait (a few KiB each while they are idle).
IDLE_HANDLERS = 32


@cache
def _green() -> tuple[Any, Any, Any]:
    """The greenlet class of :func:`run_now`'s handlers, ``greenlet.getcurrent`` and eventlet's
    ``get_hub`` (on first use: importing this module must not import eventlet or greenlet)."""
    import greenlet
    from eventlet.hubs import get_hub

    class _HandlerGreenlet(greenlet.greenlet):
        """Runs handlers one after another (see the module): each is started by :meth:`start`
        from its caller, which goes on when the handler first waits."""

        def __init__(self, idle: list[Any], hub: Any) -> None:
            super().__init__(parent=hub.greenlet)
            self._idle = idle
            self._hub = hub
            self._caller: Any = None

        def start(self, caller: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
            """Run ``fn(*args)`` now; returns when it has ended or first waits."""
            self._caller = caller
            self.parent = caller  # a handler that never waits ends back in its caller
            self.switch(fn, args)

        def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
            weak_refs = weakref.getweakrefcount(self)
            attributes = len(self.__dict__)
            while True:
                try:
                    contextvars.Context().run(fn, *args)
                except greenlet.GreenletExit:
                    return
                except BaseException:
                    # As eventlet does for a spawned green thread that raises (the hub prints
                    # it), without raising into the caller (the reader, while the handler has
                    # not waited).
                    self._hub.squelch_timer_exception(None, sys.exc_info())
                fn = args = None  # type: ignore[assignment]  # nothing of it kept while idle
                if (weakref.getweakrefcount(self) != weak_refs
                        or len(self.__dict__) != attributes
                        or len(self._idle) >= IDLE_HANDLERS):
                    return  # ends: to its caller, or to the hub if it waited
                caller, self._caller = self._caller, None
                self.parent = self._hub.greenlet  # where it would end if thrown into idle
                self._idle.append(self)
                try:
                    # Back to the caller (the handler never waited) or to the hub (it did: the
                    # hub resumed it); the next start() switches back here.
                    fn, args = (caller if caller is not None else self._hub.greenlet).switch()
                except BaseException:
                    # Thrown in while idle (a timer a handler left behind): it ends instead.
                    if self in self._idle:
                        self._idle.remove(self)
                    return

        def switch_out(self) -> None:
            """eventlet's hub calls this as the handler waits: the caller goes on (once), from
            the hub; the handler's end then goes to the hub (``hub.switch`` makes it the
            parent)."""
            caller, self._caller = self._caller, None
            if caller is not None:
                self._hub.schedule_call_global(0, _resume, caller)

    return _HandlerGreenlet, greenlet.getcurrent, get_hub


@cache
def _idle_handlers(hub: Any) -> list[Any]:
    """The handler greenlets waiting for an event under ``hub`` (one hub per thread)."""
    return []


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
    idle = _idle_handlers(hub)
    handler = idle.pop() if idle else handler_class(idle, hub)
    handler.start(caller, fn, args)


def _resume(caller: Any) -> None:
    if not caller.dead:
        caller.switch()
