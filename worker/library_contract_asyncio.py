"""The library contract's asyncio part: what the asyncio engine, the async protocol shells, the
async manager and the async framework rely on in python-engineio's and python-socketio's
asyncio classes and in uvicorn. ``library_contract.HOOKS`` includes it; see that module."""

from __future__ import annotations

from .contract_terms import (
    AEIO,
    AIO_HEAD,
    AIO_SERVING,
    ASIO,
    ASOCKET,
    ASYNC_MANAGER,
    ASYNC_MESSAGING,
    ATTRIBUTE,
    CALL,
    COPY,
    FRAMEWORK_AIO,
    LAYOUT,
    MESSAGING_BASE,
    MESSAGING_RECOVERY,
    OVERRIDE,
    P_ASYNC_EIO3,
    P_ASYNC_ENGINE,
    P_ASYNC_SIO,
    P_ASYNC_WEBSOCKET,
    P_RECOVERY,
    P_SERVER,
    UVICORN_HTTP,
    Hook,
)

# uvicorn's websocket protocol the asyncio worker serves websockets with (websockets-sansio).
UVICORN_WS = "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol"
AIO_WS = "worker/aio/ws_protocol.py"
AIO_STALL = "worker/aio/write_stall.py"
AIO_ROUTES = "worker/aio/routes.py"
# python-engineio's ASGI driver as the async shells use it (its websocket without a coroutine).
P_ASYNC_ASGI = "worker/protocol/async_asgi.py"
P_ASYNC_READER = "worker/protocol/async_ws_reader.py"
ASGI_WS = "engineio.async_drivers.asgi:WebSocket"
# The module of the asyncio fan-out (a manager's local delivery without a task per recipient).
FANOUT = "worker/messaging/fanout.py"
BURSTS = "worker/messaging/bursts.py"
SHARED_WRITES = "worker/protocol/shared_writes.py"

ASYNCIO_HOOKS: tuple[Hook, ...] = (
    # ------------------------------------------------------------ the asyncio classes
    # The async shells (worker/protocol/async_*.py) put the same rules on python-engineio's
    # and python-socketio's asyncio classes; each entry is the async twin of a sync one above.
    Hook(f"{AEIO}.handle_request", OVERRIDE, ("*args", "**kwargs"), (P_ASYNC_ENGINE,),
         "translates the request itself (through _async['translate_request']), then routes it "
         "as the sync server does"),
    Hook(f"{AEIO}._async", ATTRIBUTE, None, (P_ASYNC_ENGINE,),
         "the async driver's table, shared by every server of the process: the shell gives "
         "its server a copy whose translate_request hands back the request it has already "
         "translated (an ASGI request's first receive() cannot be read twice) and whose "
         "make_response(status, headers, payload, environ) refuses a websocket with its "
         "HTTP status (ASGI's websocket.http.response); "
         "_async['websocket'](handler, server) is a coroutine app taking the environ; the "
         "copy's is async_asgi.AsgiWebSocket when it was the ASGI driver's WebSocket"),
    Hook(f"{AEIO}.create_queue", OVERRIDE, ("*args", "**kwargs"), (P_ASYNC_ENGINE,),
         "each session's queue comes from here (called without arguments); the shell's is a "
         "session_queue.SessionQueue"),
    Hook(f"{AEIO}._make_response", OVERRIDE, ("response_dict", "environ"), (P_ASYNC_ENGINE,),
         "every response goes through it, with the request's environ: the 413"),
    Hook(f"{AEIO}._ok", OVERRIDE, ("packets", "headers", "jsonp_index"), (P_ASYNC_ENGINE,)),
    Hook(f"{AEIO}._bad_request", CALL, ("message",), (P_ASYNC_ENGINE,)),
    Hook(f"{AEIO}._cors_allowed_origins", CALL, ("environ",), (P_SERVER,),
         "as the sync server's (the method is python-engineio's base_server's)"),
    Hook(f"{AEIO}._log_error_once", CALL, ("message", "message_key"),
         (P_ASYNC_ENGINE, P_ASYNC_SIO)),
    Hook(f"{AEIO}._service_task", OVERRIDE, (), (P_ASYNC_ENGINE,),
         "the session sweep over the session ids, as the sync one"),
    Hook(f"{AEIO}.service_task_event", ATTRIBUTE, None, (P_ASYNC_ENGINE,)),
    Hook(f"{AEIO}.sockets", ATTRIBUTE, None, (P_SERVER, P_ASYNC_ENGINE),
         "as the sync one's: filled by _handle_connect with sockets[sid] = AsyncSocket(...), "
         "replaced by assignment at times (tests/unit/worker/protocol/test_protocol_async.py "
         "sees its sessions converted)"),
    Hook(f"{AEIO}.reason", ATTRIBUTE, None, (P_ASYNC_ENGINE, P_ASYNC_SIO)),
    Hook(f"{AEIO}._handle_connect", OVERRIDE, ("environ", "transport", "jsonp_index"),
         (P_ASYNC_EIO3,), "as the sync one, without start_response"),
    # The session state the async shells read, as the sync shells read Socket's (above).
    Hook(f"{ASOCKET}.server", ATTRIBUTE, None, (P_ASYNC_ENGINE, P_ASYNC_EIO3)),
    Hook(f"{ASOCKET}.sid", ATTRIBUTE, None, (P_ASYNC_ENGINE, P_ASYNC_EIO3)),
    Hook(f"{ASOCKET}.upgrading", ATTRIBUTE, None, (P_ASYNC_ENGINE,)),
    Hook(f"{ASOCKET}.upgraded", ATTRIBUTE, None, (P_ASYNC_ENGINE,)),
    Hook(f"{ASOCKET}.connected", ATTRIBUTE, None, (P_ASYNC_ENGINE,)),
    Hook(f"{ASOCKET}.closing", ATTRIBUTE, None, (P_ASYNC_ENGINE,)),
    Hook(f"{ASOCKET}.closed", ATTRIBUTE, None, (P_ASYNC_ENGINE, P_ASYNC_EIO3)),
    Hook(f"{ASOCKET}.receive", OVERRIDE, ("pkt",), (P_ASYNC_ENGINE, P_ASYNC_EIO3)),
    Hook(f"{ASOCKET}.send", OVERRIDE, ("pkt",), (P_ASYNC_EIO3, SHARED_WRITES),
         "awaited for every packet of one session (eio.send: an ack, an emit to a sid; "
         "close's CLOSE): checks the ping timeout, queues the packet, logs it at INFO; "
         "AsyncSharedWrites.send writes a MESSAGE's frame straight to the transport when it "
         "can go now"),
    Hook(f"{ASOCKET}.poll", OVERRIDE, (), (P_ASYNC_ENGINE, P_ASYNC_EIO3),
         "raises engineio.exceptions.QueueEmpty when nothing came in time (or the wait is "
         "cancelled), returns [] for the queue's None; re-implemented by the async shell on "
         "Python 3.11+ (asyncio.timeout instead of wait_for)"),
    Hook(f"{ASOCKET}.check_ping_timeout", OVERRIDE, (), (P_ASYNC_EIO3,)),
    Hook(f"{ASOCKET}.schedule_ping", OVERRIDE, (), (P_ASYNC_ENGINE, P_ASYNC_EIO3),
         "a plain method (not a coroutine), called from inside the loop"),
    Hook(f"{ASOCKET}._send_ping", COPY, (), (P_ASYNC_ENGINE,),
         "AsyncConformantSocket._ping_now is its body without the sleep, from a loop timer"),
    Hook(f"{ASOCKET}.close", OVERRIDE, ("wait", "abort", "reason"), (P_ASYNC_ENGINE,),
         "called with wait=False, then None put on the session's queue as the sync "
         "Socket.close does, so a pending long-poll GET answers at once"),
    Hook(f"{ASOCKET}.queue", ATTRIBUTE, None, (P_ASYNC_ENGINE,),
         "what server.create_queue() gave (BaseSocket.__init__), used as an unbounded "
         "asyncio.Queue: get, get_nowait, put, put_nowait, task_done, join; poll() reads it; "
         "None ends the GET with an empty answer"),
    Hook(f"{ASOCKET}.handle_get_request", OVERRIDE, ("environ",),
         (P_ASYNC_ENGINE, P_ASYNC_EIO3)),
    Hook(f"{ASOCKET}.handle_post_request", OVERRIDE, ("environ",), (P_ASYNC_ENGINE,),
         "re-implemented: environ['wsgi.input'].read(n) is awaited"),
    Hook(f"{ASOCKET}.check_ping_timeout", CALL, (), (P_ASYNC_ENGINE,)),
    Hook(f"{ASOCKET}._websocket_handler", OVERRIDE, ("ws",), (P_ASYNC_ENGINE,),
         "reads frames with await ws.wait(), as the sync one; the shell's is a plain call "
         "returning serve_websocket's awaitable (whose result, None, is the ASGI app's)"),
    Hook(f"{ASOCKET}._websocket_handler", COPY, ("ws",), (P_ASYNC_WEBSOCKET,),
         "serve_websocket re-implements it (the upgrade's probe exchange, the writer, the "
         "read loop and its end) reading frames in the session's own task, one ReadDeadline "
         "timer per websocket instead of a task and wait_for per frame; the writer is an "
         "AsyncLazyWriter (a task only while something is queued, packets framed and written "
         "to the transport at once when it takes them) instead of a task parked in poll()"),
    Hook(f"{ASIO}._handle_eio_connect", OVERRIDE, ("eio_sid", "environ"),
         (P_ASYNC_SIO, P_ASYNC_EIO3)),
    Hook(f"{ASIO}._handle_eio_message", OVERRIDE, ("eio_sid", "data"),
         (P_ASYNC_SIO, P_ASYNC_EIO3)),
    Hook(f"{ASIO}._send_packet", OVERRIDE, ("eio_sid", "pkt"), (P_ASYNC_EIO3, P_RECOVERY)),
    Hook(f"{ASIO}._send_eio_packet", CALL, ("eio_sid", "eio_pkt"), (FANOUT, BURSTS),
         "a coroutine: the fan-out's (and a burst's) fallback for a session that does not "
         "take a packet without awaiting"),
    Hook("socketio.async_manager:AsyncManager.emit", OVERRIDE,
         ("event", "data", "namespace", "room", "skip_sid", "callback", "to", "**kwargs"),
         (FANOUT,), "AsyncPubSubManager's local delivery calls it (super().emit in "
         "_handle_emit); AsyncFanoutMixin sits between the two in the manager's bases"),
    Hook("socketio.async_manager:AsyncManager.emit", COPY,
         ("event", "data", "namespace", "room", "skip_sid", "callback", "to", "**kwargs"),
         (FANOUT,), "AsyncFanoutMixin.emit repeats it up to the packets (data as a list, "
         "skip_sid as a list, one EVENT packet encoded once, one engineio Packet per part); "
         "the per-recipient send differs"),
    Hook("socketio.async_manager:AsyncManager.get_participants", CALL, ("namespace", "room"),
         (FANOUT,), "(sid, eio_sid) of every recipient"),
    Hook(f"{ASYNC_MANAGER}._handle_emit", COPY, ("message",), (BURSTS,),
         "held_emit repeats what it hands emit (as the sync _handle_emit)"),
    Hook(f"{ASGI_WS}.asgi_send", ATTRIBUTE, None,
         (SHARED_WRITES, P_ASYNC_ASGI, P_ASYNC_WEBSOCKET),
         "the ASGI send callable, under uvicorn a bound method of its websocket protocol"),
    # A websocket's request lasts as long as the connection: the calls on its chain return
    # the next awaitable instead of awaiting it (no coroutine of theirs under an idle one).
    Hook(f"{ASGI_WS}.__call__", OVERRIDE, ("environ",), (P_ASYNC_ASGI,),
         "AsgiWebSocket's is a plain call: it sets asgi_receive and asgi_send and returns "
         "handler(self) unaccepted (the handler accepts, and returns None where python-"
         "engineio's call returned ''); used in place of the class in a server's _async"),
    Hook(f"{ASGI_WS}.wait", COPY, (), (P_ASYNC_ASGI,),
         "asgi_frame reads a receive() event as wait() does (bytes, else text; OSError for "
         "anything but websocket.receive); the guarded websocket awaits asgi_receive itself"),
    Hook(f"{ASGI_WS}.asgi_receive", ATTRIBUTE, None, (P_ASYNC_ENGINE, P_ASYNC_ASGI)),
    Hook(f"{ASGI_WS}.handler", ATTRIBUTE, None, (P_ASYNC_ASGI,),
         "the handler given to __init__(handler, server)"),
    Hook("engineio.async_drivers.asgi:ASGIApp.__call__", COPY, ("scope", "receive", "send"),
         (AIO_ROUTES,), "EngineIoRoutes repeats its routing test (type http or websocket, and "
         "engineio_path None or a prefix of the path with a trailing slash) and returns "
         "engineio_server.handle_request(scope, receive, send)'s awaitable; the rest goes to "
         "the app"),
    Hook("engineio.async_drivers.asgi:ASGIApp.engineio_server", ATTRIBUTE, None, (AIO_ROUTES,)),
    Hook("engineio.async_drivers.asgi:ASGIApp.engineio_path", ATTRIBUTE, None, (AIO_ROUTES,),
         "None, or the path with a leading and a trailing slash"),
    Hook(f"{ASIO}.handle_request", OVERRIDE, ("*args", "**kwargs"), (P_ASYNC_SIO,),
         "python-socketio's awaits eio.handle_request(*args, **kwargs) and returns its "
         "result; the shell's returns that awaitable"),
    Hook(f"{ASOCKET}._upgrade_websocket", OVERRIDE, ("environ",), (P_ASYNC_ENGINE,),
         "a plain call returning _async['websocket'](self._websocket_handler, server)"
         "(environ), OSError when upgraded already, the 400 when the mode has no websocket"),
    Hook(f"{ASOCKET}.handle_get_request", COPY, ("environ",), (P_ASYNC_ENGINE,),
         "its upgrade branch (Connection has upgrade, Upgrade in upgrade_protocols; the "
         "INFO line) is repeated by the shell's plain call, which returns "
         "_upgrade_websocket(environ)"),
    Hook(f"{ASOCKET}.upgrade_protocols", ATTRIBUTE, None, (P_ASYNC_ENGINE,)),
    Hook(f"{UVICORN_WS}.transport", ATTRIBUTE, None, (SHARED_WRITES, P_ASYNC_WEBSOCKET),
         "shared frames are written to it directly; the writer aborts it when it takes no "
         "write for ping_interval + ping_timeout"),
    Hook(f"{UVICORN_WS}.writable", ATTRIBUTE, None, (SHARED_WRITES, P_ASYNC_WEBSOCKET),
         "an asyncio.Event cleared while the transport is over its high-water mark"),
    Hook(f"{UVICORN_WS}.disconnected", ATTRIBUTE, None, (SHARED_WRITES,)),
    Hook(f"{UVICORN_WS}.close_sent", ATTRIBUTE, None, (SHARED_WRITES,)),
    Hook(f"{UVICORN_WS}.conn", ATTRIBUTE, None, (SHARED_WRITES,),
         "the websockets ServerProtocol; its extensions (permessage-deflate) make frames "
         "differ per socket; it keeps no state about the data frames it did not write"),
    Hook(f"{ASIO}._handle_eio_message", COPY, ("eio_sid", "data"), (P_ASYNC_SIO,),
         "_sioctl_dispatch repeats its dispatch by packet type, as the sync one"),
    Hook(f"{ASIO}._handle_eio_disconnect", OVERRIDE, ("eio_sid", "reason"), (P_ASYNC_SIO,)),
    Hook(f"{ASIO}._handle_connect", OVERRIDE, ("eio_sid", "namespace", "data"),
         (P_ASYNC_SIO, P_ASYNC_EIO3, FRAMEWORK_AIO, P_RECOVERY), "python-socketio's own asks "
         "eio.generate_id() in the task that awaits it (io.generate_id on asyncio; sio_v4 "
         "names v2 sockets)"),
    Hook(f"{ASIO}._handle_connect", CALL, ("eio_sid", "namespace", "data"), (P_ASYNC_EIO3,)),
    Hook(f"{ASIO}._send_packet", CALL, ("eio_sid", "pkt"), (P_ASYNC_SIO, FRAMEWORK_AIO)),
    Hook(f"{ASIO}._handle_disconnect", OVERRIDE, ("eio_sid", "namespace", "reason"),
         (P_RECOVERY,), "reason: python-engineio's reason string, as on Server"),
    Hook(f"{ASYNC_MANAGER}._handle_emit", OVERRIDE, ("message",),
         (ASYNC_MESSAGING, MESSAGING_RECOVERY),
         "a coroutine; emit() awaits it with its own message before publishing it"),
    Hook(f"{ASIO}._handle_disconnect", CALL, ("eio_sid", "namespace", "reason"),
         (P_ASYNC_SIO,)),
    Hook(f"{ASIO}._handle_event", CALL, ("eio_sid", "namespace", "id", "data"),
         (P_ASYNC_SIO,)),
    Hook(f"{ASIO}._handle_event", ATTRIBUTE, None, (P_ASYNC_SIO,),
         "events_dispatch_inline: the server's class keeps python-socketio's own (its log "
         "line, its connected check, then the handler started by start_background_task)"),
    Hook(f"{ASIO}._handle_eio_message", ATTRIBUTE, None, (P_ASYNC_SIO,),
         "events_dispatch_inline: every class defining it is python-socketio's or sioctl's"),
    Hook(f"{ASIO}.start_background_task", ATTRIBUTE, None, (P_ASYNC_SIO,),
         "events_dispatch_inline: python-socketio's own (asyncio.ensure_future, no wait)"),
    Hook(f"{ASIO}.async_handlers", ATTRIBUTE, None, (P_ASYNC_SIO,),
         "True (the default): each event's handler runs in a task of its own, so an EVENT "
         "message's dispatch starts it and returns (events_dispatch_inline)"),
    Hook(f"{AEIO}.handlers", ATTRIBUTE, None, (P_ASYNC_SIO,),
         "a dict; its 'message' entry is the socketio server's bound _handle_eio_message "
         "(python-socketio registers it; adopt() keeps it pointing at the server)"),
    Hook(f"{ASIO}._handle_ack", CALL, ("eio_sid", "namespace", "id", "data"), (P_ASYNC_SIO,)),
    Hook(f"{ASIO}.emit", OVERRIDE, ("event", "data", "to", "room", "skip_sid", "namespace",
                                    "callback", "ignore_queue"), (P_ASYNC_SIO,),
         "counted for the metrics; send() and call() go through it"),
    Hook(f"{ASIO}._binary_packet", ATTRIBUTE, None, (P_ASYNC_SIO,)),
    Hook(f"{ASIO}.environ", ATTRIBUTE, None, (P_ASYNC_SIO,)),
    Hook(f"{ASIO}.packet_class", ATTRIBUTE, None, (P_ASYNC_SIO, P_ASYNC_EIO3)),
    Hook(f"{ASIO}.reason", ATTRIBUTE, None, (P_ASYNC_SIO,)),
    # ---------------------------------------------- python-socketio: the asyncio manager
    Hook(f"{ASYNC_MANAGER}.initialize", OVERRIDE, (), (ASYNC_MESSAGING,),
         "synchronous; starts _thread, which reads _listen(), as a task"),
    Hook(f"{ASYNC_MANAGER}.thread", LAYOUT, None, (ASYNC_MESSAGING,),
         "after initialize(): the asyncio task reading _listen() (cancelled by aclose)"),
    Hook(f"{ASYNC_MANAGER}.emit", OVERRIDE,
         ("event", "data", "namespace", "room", "skip_sid", "callback", "to", "**kwargs"),
         (ASYNC_MESSAGING,), "a coroutine; a plain emit to another worker's socket is "
         "queued directly (SioctlManagerBase._direct_emit), as the sync manager's"),
    Hook(f"{ASYNC_MANAGER}.emit", COPY,
         ("event", "data", "namespace", "room", "skip_sid", "callback", "to", "**kwargs"),
         (MESSAGING_BASE,), "_direct_emit builds the message emit() builds (as the sync "
         "manager's: the same keys and data list)"),
    Hook(f"{ASYNC_MANAGER}._publish", OVERRIDE, ("data",), (ASYNC_MESSAGING,),
         "a coroutine; every message to other workers goes through it"),
    Hook(f"{ASYNC_MANAGER}._listen", OVERRIDE, (), (ASYNC_MESSAGING,),
         "an async generator of received messages"),
    Hook(f"{ASYNC_MANAGER}._get_logger", CALL, (), (ASYNC_MESSAGING, MESSAGING_BASE)),
    Hook(f"{ASYNC_MANAGER}.pre_connect", OVERRIDE, ("eio_sid", "namespace"),
         (ASYNC_MESSAGING,), "a coroutine"),
    Hook(f"{ASYNC_MANAGER}.connect", OVERRIDE, ("sid", "namespace"), (ASYNC_MESSAGING,),
         "a coroutine"),
    Hook(f"{ASYNC_MANAGER}.channel", ATTRIBUTE, None, (ASYNC_MESSAGING, MESSAGING_BASE)),
    Hook(f"{ASYNC_MANAGER}.host_id", ATTRIBUTE, None, (ASYNC_MESSAGING, MESSAGING_BASE)),
    Hook(f"{ASYNC_MANAGER}.server", ATTRIBUTE, None, (ASYNC_MESSAGING,),
         "the socketio.AsyncServer, set by set_server"),
    # ------------------------------------------------------------ the asyncio engine
    Hook("engineio.async_drivers.asgi:_async", LAYOUT, None, ("worker/aio/fixes.py",),
         "the ASGI driver's table, shared by every AsyncServer in asgi mode: "
         "_async['translate_request'](scope, receive, send) is awaited for each request and "
         "returns the environ (REMOTE_ADDR fixed to 127.0.0.1), which sioctl's wrapper corrects; "
         "its wsgi.input (an object with an awaitable read(), of a class defined on every "
         "call) is read only for a POST body, so the wrapper gives a websocket's environ a "
         "shared empty one"),
    Hook("socketio.async_server:AsyncServer.manager_initialized", ATTRIBUTE, None,
         ("worker/aio/app.py",),
         "the manager is initialized on the first connection unless this is set"),
    # ------------------------------------------------------------ uvicorn (the asyncio engine)
    Hook(f"{UVICORN_HTTP}.__init__", CALL, ("config", "server_state", "app_state", "_loop"),
         (AIO_SERVING,), "built by the worker's protocol factory (Config.http_protocol_class)"),
    Hook(f"{UVICORN_HTTP}.shutdown", CALL, (), (AIO_SERVING,),
         "uvicorn's graceful shutdown of one connection"),
    Hook(f"{UVICORN_HTTP}.data_received", OVERRIDE, ("data",), (AIO_HEAD,),
         "feeds the parser, whose callbacks set a new cycle once a request head is complete "
         "and hand the transport to the websocket protocol on an upgrade"),
    Hook(f"{UVICORN_HTTP}.connection_lost", OVERRIDE, ("exc",), (AIO_HEAD, AIO_STALL)),
    Hook(f"{UVICORN_HTTP}.pause_writing", OVERRIDE, (), (AIO_STALL,),
         "called by the transport when its write buffer goes over the high-water mark "
         "(uvicorn's flow then waits in drain() before the next write, without a limit)"),
    Hook(f"{UVICORN_HTTP}.resume_writing", OVERRIDE, (), (AIO_STALL,),
         "called by the transport when its buffer is back under the low-water mark (not "
         "at connection_lost, where uvicorn resumes its flow itself)"),
    Hook(f"{UVICORN_HTTP}.cycle", LAYOUT, None, (AIO_SERVING, AIO_HEAD, AIO_STALL),
         "None until a request head is complete, then the request's cycle, whose "
         "response_complete says the connection waits for its next request; transport and "
         "client are the connection's; the protocol is in server_state.connections while open"),
    Hook(f"{UVICORN_WS}.send", OVERRIDE, ("message",), (AIO_WS,),
         "its websocket.accept answers the handshake from request/response; after it nothing "
         "reads the request's headers (websockets' parser generator keeps the request) nor "
         "conn.available_extensions (read by the handshake's accept()); websockets' "
         "ServerProtocol.parse (conn.parser) runs Protocol.parse inside itself after the "
         "request, so a fresh Protocol.parse waiting in reader.at_eof() replaces it"),
    Hook(f"{UVICORN_HTTP}.handle_websocket_upgrade", OVERRIDE, (), (AIO_WS,),
         "hands the transport to a new websocket protocol; the HTTP protocol object is not "
         "used after it"),
    Hook(f"{UVICORN_HTTP}.parser", LAYOUT, None, (AIO_WS,),
         "httptools' parser, made with the protocol's callbacks (a reference cycle); set to "
         "None after an upgrade, the HTTP protocol is freed without the cyclic collector"),
    Hook(f"{UVICORN_WS}.queue", LAYOUT, None, (AIO_WS,),
         "set in __init__; only put_nowait, get and empty are called on it; writable (set in "
         "__init__) only set, clear and wait; request and response set by the handshake and "
         "read only by the accept"),
    Hook(f"{UVICORN_WS}.send_receive_event_to_app", OVERRIDE, (), (AIO_WS,),
         "called by handle_text/handle_bytes/handle_cont once a message's last frame is in "
         "(frames, curr_msg_data_type); once the reads are handed over the message goes to "
         "queue.frame(data) instead"),
    Hook(f"{UVICORN_WS}.send_receive_event_to_app", COPY, (), (AIO_WS,),
         "repeated once the reads are handed over: the frames joined, dropped after "
         "close_sent, text decoded (invalid UTF-8: send_close(1007), "
         "handle_parser_exception()); reads are not paused"),
    Hook(f"{UVICORN_WS}.run_asgi", OVERRIDE, (), (AIO_WS,),
         "the task uvicorn starts at the handshake (handle_connect) to run the app"),
    Hook(f"{UVICORN_WS}.run_asgi", COPY, (), (AIO_WS,),
         "repeated, except that the transport is not closed when the app returns once the "
         "websocket's reads were handed to the callbacks (async_ws_reader.ProtocolReader), "
         "which close it at its end (close_timer None: no close handshake under way)"),
    Hook(f"{UVICORN_WS}.handle_parser_exception", CALL, (), (AIO_WS,)),
    Hook(f"{UVICORN_WS}.send_500_response", CALL, (), (AIO_WS,)),
    Hook(f"{UVICORN_WS}.read_paused", ATTRIBUTE, None, (P_ASYNC_READER,),
         "True while uvicorn has paused the transport's reading; its close resumes reading "
         "when it is set"),
    Hook(f"{UVICORN_WS}.receive", ATTRIBUTE, None, (P_ASYNC_READER,),
         "a bound method of the protocol: the guarded websocket's receive, whose __self__ is "
         "the protocol the reads are handed to"),
    Hook(f"{UVICORN_WS}.close_timer", ATTRIBUTE, None, (AIO_WS,),
         "None unless the server's close handshake is under way"),
    Hook("uvicorn.config:Config.ws_protocol_class", ATTRIBUTE, None, (AIO_SERVING,),
         "set by load(): the class the HTTP protocol hands a websocket upgrade to"),
    Hook("uvicorn.config:Config.load", CALL, (), (AIO_SERVING,)),
    Hook("uvicorn.config:Config.http_protocol_class", ATTRIBUTE, None, (AIO_SERVING,),
         "set by load(): the HTTP protocol class the worker attaches to each connection"),
    Hook("uvicorn.config:Config.encoded_headers", ATTRIBUTE, None, (AIO_SERVING,),
         "set by load(): the headers every response carries (Server.on_tick adds Date)"),
    Hook("uvicorn.server:ServerState.connections", ATTRIBUTE, None, (AIO_SERVING,)),
    Hook("uvicorn.server:ServerState.default_headers", ATTRIBUTE, None, (AIO_SERVING,),
         "read by every response; uvicorn's Server refreshes it every second, the worker does"),
)
