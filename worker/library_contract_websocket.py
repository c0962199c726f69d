"""The library contract's part for the eventlet websocket an idle session is read from: how the
request hands its reading over to a green thread started at the hub, the frame reading without
eventlet's generator, and the websocket's send lock (docs/design.md, "Memory per idle
websocket"). ``library_contract.HOOKS`` includes it; see that module."""

from __future__ import annotations

from .contract_terms import (
    ATTRIBUTE,
    CALL,
    CONNECTION,
    COPY,
    LAYOUT,
    OVERRIDE,
    P_ENGINEIO,
    P_WEBSOCKET_SERVE,
    WSGI,
    Hook,
)

WEBSOCKET_HOOKS: tuple[Hook, ...] = (
    Hook("eventlet.websocket:WebSocketWSGI.__call__", LAYOUT, None, (P_ENGINEIO,),
         "after the handshake it calls handler(ws), catching only OSError; once the handler "
         "returns it sends the closing frame (ws._send_closing_frame(True)) and sets "
         "wsgi.WSGI_LOCAL.already_handled: a handler that hands the reading over raises "
         "ReadLater past both, and the reader does them at the websocket's end"),
    Hook("eventlet.websocket:WebSocketWSGI._handle_hybi_request", LAYOUT, None, (CONNECTION,),
         "accepts permessage-deflate only when the environ's HTTP_SEC_WEBSOCKET_EXTENSIONS "
         "offers it: TimedProtocol.get_environ drops that key to decline compression "
         "(--no-ws-per-message-deflate)"),
    Hook("eventlet.websocket:RFC6455WebSocket._send_closing_frame", CALL,
         ("ignore_send_errors", "close_data"), (P_ENGINEIO,),
         "what eventlet's websocket app sends once its handler returns; the reader sends it "
         "when the websocket ends"),
    Hook("eventlet.websocket:RFC6455WebSocket._iter_frames", COPY, (), (P_WEBSOCKET_SERVE,),
         "websocket_serve._next_message is its body as a function (wait() takes the next "
         "message from this generator; resuming it would be a C-level call under every idle "
         "reader): the control frames answered, a fragmented message assembled, the close "
         "frames of a failed connection (its status) and of an error (1011, raised)"),
    Hook("eventlet.websocket:RFC6455WebSocket._recv_frame", CALL, ("message",),
         (P_WEBSOCKET_SERVE,), "reads one frame; returns a Message (opcode, finished, "
         "getvalue()), the one passed in when the frame continues it"),
    Hook("eventlet.websocket:RFC6455WebSocket._handle_control_frame", CALL,
         ("opcode", "data"), (P_WEBSOCKET_SERVE,),
         "answers a ping, closes on a close frame (raising ConnectionClosedError)"),
    Hook("eventlet.websocket:RFC6455WebSocket.wait", ATTRIBUTE, None, (P_WEBSOCKET_SERVE,),
         "compared with the websocket's own: _next_message stands in for it only when the "
         "websocket's class does not override it"),
    Hook("eventlet.websocket:RFC6455WebSocket.iterator", ATTRIBUTE, None, (P_WEBSOCKET_SERVE,),
         "the _iter_frames generator wait() reads from, made in __init__; replaced by an "
         "empty iterator when _next_message reads instead (unstarted, it holds the websocket "
         "in a reference cycle)"),
    Hook("eventlet.websocket:ConnectionClosedError", ATTRIBUTE, None, (P_WEBSOCKET_SERVE,)),
    Hook("eventlet.websocket:FailedConnectionError", ATTRIBUTE, None, (P_WEBSOCKET_SERVE,),
         "carries status and message (the close frame's)"),
    Hook("eventlet.websocket:ACCEPTABLE_CLIENT_ERRORS", ATTRIBUTE, None, (P_ENGINEIO,),
         "the errnos of a client gone that eventlet's websocket app does not raise"),
    Hook(f"{WSGI}:WSGI_LOCAL", ATTRIBUTE, None, (P_ENGINEIO,),
         "already_handled = True on it: the response was written by the app itself "
         "(eventlet.wsgi writes none and closes the connection after the request)"),
    Hook("eventlet.semaphore:Semaphore.acquire", OVERRIDE, ("blocking", "timeout"),
         (CONNECTION,),
         "SendLock takes the lock at once when counter > 0 and nothing waits (eventlet's "
         "own path then), else makes the waiters' deque and calls it"),
    Hook("eventlet.semaphore:Semaphore._waiters", ATTRIBUTE, None, (CONNECTION,),
         "a deque made in __init__; appended to only by acquire when it has to wait; "
         "release, _do_acquire, balance and repr read it only (truth, len, popleft when "
         "not empty), so an empty tuple stands in until acquire waits"),
    Hook("eventlet.semaphore:Semaphore.counter", ATTRIBUTE, None, (CONNECTION,),
         "the free count, set in __init__ (SendLock sets it without calling __init__)"),
    Hook("eventlet.greenio.base:GreenSocket.send", LAYOUT, None, (CONNECTION,),
         "returns the count sent (a part once the buffer is full); a send that finds no room "
         "waits at most the socket's timeout, then raises socket.timeout (a TimeoutError) "
         "having sent nothing: StallLimitedWrites.write keeps its count and looks at the "
         "kernel's send queue (write_stall.SendWatch) before it takes the wait for a stall"),
    Hook("eventlet.green.ssl:GreenSSLSocket.send", LAYOUT, None, ("worker/ws_reads.py",),
         "GreenSSLSocket subclasses the stdlib's ssl.SSLSocket and keeps the socket "
         "non-blocking (waiting for room itself): ws_reads.tls_send, the stdlib's send bound "
         "to it, raises SSLWantWriteError on a full buffer instead of waiting, so that "
         "BufferedReads.sendall waits for room itself and judges each wait by the kernel's "
         "send queue (eventlet's own send may write part of a record within a wait)"),
)
