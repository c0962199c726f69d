"""The library contract's part for the eventlet worker's per-message path (issue 19, the echo):
each event's handler started at once in a greenlet of its own (``protocol/green_handlers.py``)
and a websocket's fd kept registered with eventlet's hub between reads (``worker/ws_reads.py``;
docs/design.md, "The eventlet echo path"). ``library_contract.HOOKS`` includes it; see that
module."""

from __future__ import annotations

from .contract_terms import (
    ATTRIBUTE,
    CALL,
    COPY,
    GREEN_HANDLERS,
    LAYOUT,
    OVERRIDE,
    P_SOCKETIO,
    SIO,
    Hook,
)

GREEN_HOOKS: tuple[Hook, ...] = (
    Hook(f"{SIO}._handle_event", OVERRIDE, ("eio_sid", "namespace", "id", "data"),
         (P_SOCKETIO,), "called for every EVENT and complete BINARY_EVENT"),
    Hook(f"{SIO}._handle_event", COPY, ("eio_sid", "namespace", "id", "data"), (P_SOCKETIO,),
         "eventlet: its log lines and connected check, then _handle_event_internal started "
         "at once by green_handlers.run_now instead of start_background_task"),
    Hook(f"{SIO}._handle_event_internal", CALL,
         ("server", "sid", "eio_sid", "data", "namespace", "id"), (P_SOCKETIO,),
         "runs the handler and sends its ack"),
    Hook(f"{SIO}.async_handlers", ATTRIBUTE, None, (P_SOCKETIO,),
         "True (the default): each event's handler runs in a green thread of its own"),
    Hook(f"{SIO}.async_mode", ATTRIBUTE, None, (P_SOCKETIO,),
         "'eventlet' under the eventlet worker (python-engineio's async mode)"),
    Hook("eventlet.hubs.hub:BaseHub.switch", LAYOUT, None, (GREEN_HANDLERS,),
         "calls the current greenlet's switch_out() (if it has one) before switching to "
         "the hub, and makes the hub its parent"),
    Hook("eventlet.hubs.hub:BaseHub.squelch_timer_exception", CALL, ("timer", "exc_info"),
         (GREEN_HANDLERS,), "prints an exception as the hub does for a green thread's"),
    Hook("eventlet.hubs.hub:BaseHub.listeners", ATTRIBUTE, None, ("worker/ws_reads.py",),
         "{READ: {fd: listener}}: a parked listener is kept while it is its fd's READ entry"),
    Hook("eventlet.hubs.hub:BaseHub.add", CALL, ("evtype", "fileno", "cb", "tb",
                                                 "mark_as_closed"), ("worker/ws_reads.py",)),
    Hook("eventlet.hubs.hub:BaseHub.remove", CALL, ("listener",), ("worker/ws_reads.py",)),
    Hook("eventlet.websocket:RFC6455WebSocket.max_frame_length", ATTRIBUTE, None,
         ("worker/protocol/guarded_websocket.py",),
         "take_frame leaves a longer frame to eventlet (it closes with 1009)"),
)
