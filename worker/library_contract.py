"""Every part of python-engineio, python-socketio, eventlet and gunicorn that sioctl relies on
beyond their documented API: private members, methods we override, undocumented attributes and
data layouts, and what we patch.

sioctl corrects python-engineio and python-socketio from the inside, so a release of either that
renames a private method or changes a dict's shape would not fail loudly: it would quietly undo
a correction. This list is the contract. ``tests/contract/test_library_contract.py`` checks
every entry against the installed libraries (that the member exists, with the parameter names
below, and that each layout holds on small real objects), so an upgrade fails in one test that
names the hook; and it checks that the list is complete (a private name of these libraries used
anywhere in sioctl, or a library method a sioctl class overrides, that is not listed fails the
test).

Nothing here is imported by the worker: the module only lists. A ``target`` is
``module:Qualified.name``; ``params`` are the parameter names of the library's function as we
rely on them (``self`` left out; ``*args``/``**kwargs`` written so), or None for an attribute.
"""

from __future__ import annotations

from .contract_terms import (  # noqa: F401 (the contract's words, re-exported)
    AEIO,
    AIO_SERVING,
    ASIO,
    ASOCKET,
    ASYNC_MANAGER,
    ASYNC_MESSAGING,
    ATTRIBUTE,
    CALL,
    CONNECTION,
    COPY,
    EIO,
    FRAMEWORK,
    FRAMEWORK_AIO,
    FRAMEWORK_IDS,
    GREEN_HANDLERS,
    HTTP,
    KINDS,
    LAYOUT,
    LIBRARIES,
    MANAGER,
    MEMORY,
    MESSAGING,
    MESSAGING_BASE,
    MESSAGING_RECOVERY,
    OVERRIDE,
    P_ASYNC_EIO3,
    P_ASYNC_ENGINE,
    P_ASYNC_SIO,
    P_CORE_EIO3,
    P_CORE_JSON,
    P_CORE_SIO,
    P_EIO3,
    P_ENGINEIO,
    P_HANDSHAKE,
    P_PING,
    P_RECOVERY,
    P_SERVER,
    P_SIOV4,
    P_SOCKETIO,
    P_WEBSOCKET_SERVE,
    PATCH,
    SIO,
    SOCKET,
    UVICORN_HTTP,
    WSGI,
    Hook,
)
from .library_contract_asyncio import ASYNCIO_HOOKS, UVICORN_WS
from .library_contract_green import GREEN_HOOKS
from .library_contract_manager import MANAGER_HOOKS
from .library_contract_websocket import WEBSOCKET_HOOKS

# The shells of the broadcast write path (shared frames written straight to a websocket).
SHARED_WRITES = "worker/protocol/shared_writes.py"
# The manager's local delivery with the per-recipient work of a fan-out done once.
FANOUT = "worker/messaging/fanout.py"
# The listener's own delivery of a burst of Redis messages (targeted emits, issue 19).
BURSTS = "worker/messaging/bursts.py"

HOOKS: tuple[Hook, ...] = (
    # ------------------------------------------------------------ python-engineio: the server
    Hook(f"{EIO}.handle_request", OVERRIDE, ("environ", "start_response"),
         (P_SERVER, P_HANDSHAKE),
         "request checks before python-engineio's (400s, 413, a second websocket closed, a "
         "poll during an upgrade held); EIO=3 handshakes let in as EIO=4"),
    Hook(f"{EIO}._handle_connect", OVERRIDE, ("environ", "start_response", "transport",
                                              "jsonp_index"), (P_HANDSHAKE,),
         "an EIO=3 handshake puts its own query back and runs python-engineio's, unchanged, "
         "with a context variable set; the others go straight on to python-engineio"),
    Hook(f"{EIO}._handle_connect", LAYOUT, None, (P_SERVER, P_HANDSHAKE, P_EIO3),
         "its steps, in this order: the session built as engineio.socket.Socket(self, sid) "
         "and stored with sockets[sid] = s (where _sioctl_adopt_session changes its class), "
         "then the OPEN packet sent with s.send(), s.schedule_ping(), and a polling "
         "handshake answered with self._ok(s.poll(), headers=..., jsonp_index=...)"),
    Hook(f"{EIO}._bad_request", CALL, ("message",), (P_SERVER, P_HANDSHAKE),
         "returns a response dict with status, headers, response"),
    Hook(f"{EIO}._cors_headers", CALL, ("environ",), (P_SERVER, P_HANDSHAKE),
         "returns a list of header tuples"),
    Hook(f"{EIO}._cors_allowed_origins", CALL, ("environ",), (P_SERVER,),
         "returns the origins a request may come from (None: every one); the cross-origin "
         "refusal is sioctl's, saying how to allow origins, before python-engineio's own"),
    Hook(f"{EIO}._ok", OVERRIDE, ("packets", "headers", "jsonp_index"), (P_SERVER, P_HANDSHAKE),
         "returns a response dict; the body of a POST's answer is replaced by b'ok'; the "
         "EIO=3 polling handshake's answer (the packets of s.poll()) is framed the v3 way"),
    Hook(f"{EIO}._log_error_once", OVERRIDE, ("message", "message_key"),
         (P_ENGINEIO, P_SERVER, P_HANDSHAKE, P_SOCKETIO),
         "called with our own keys; overridden for python-engineio's key 'bad-sid' (a request "
         "naming a session the server does not hold: 'Invalid session SID'), logged at INFO "
         "instead of ERROR (UnknownSessionLogMixin: a planned restart logs no ERROR)"),
    Hook(f"{EIO}._service_task", OVERRIDE, (), (P_SERVER,),
         "the session sweep, rewritten to hold no session between two looks; tracks "
         "python-engineio's: check_ping_timeout on each open session, closed ones forgotten"),
    Hook(f"{EIO}._async", LAYOUT, None, (P_SERVER,),
         "the async driver's table: _async['websocket'](handler, server) is a WSGI app that "
         "accepts a websocket and runs handler(ws) on it (a second websocket is accepted "
         "there, then closed)"),
    Hook(f"{EIO}.create_queue", OVERRIDE, ("*args", "**kwargs"), (P_PING,),
         "each session's queue comes from here"),
    Hook(f"{EIO}.generate_id", PATCH, (), (FRAMEWORK_IDS,),
         "replaced on the instance: python-socketio asks it for every new socket id"),
    Hook(f"{EIO}.generate_id", OVERRIDE, (), (P_SERVER, P_SIOV4, P_ASYNC_EIO3),
         "python-socketio's manager asks it (pre_connect, no arguments) for each new socket "
         "id, inside _handle_connect: a v2 session's id is handed out there (the app's "
         "io.generate_id, patched on the instance, still comes first)"),
    Hook(f"{EIO}.sockets", LAYOUT, None,
         (P_SERVER, P_HANDSHAKE, P_SIOV4, P_SOCKETIO, "worker/drain.py", "worker/main.py",
          MEMORY),
         "a plain instance attribute (ConformantEngineMixin's sockets property shadows it and "
         "keeps the dict in __dict__['sockets']), a dict sid -> Socket that _handle_connect "
         "fills with sockets[sid] = Socket(...) before the session's first request, and that "
         "python-engineio may replace by assignment"),
    Hook(f"{EIO}.handlers", LAYOUT, None, (P_SOCKETIO,),
         "a dict event -> handler; socketio.Server registers its bound _handle_eio_connect, "
         "_handle_eio_message and _handle_eio_disconnect there when it is built"),
    Hook(f"{EIO}.service_task_event", ATTRIBUTE, None, (P_SERVER,),
         "the event that stops the service task (set by shutdown)"),
    Hook(f"{EIO}.ping_interval_grace_period", ATTRIBUTE, None, (P_PING,)),
    Hook(f"{EIO}.reason", ATTRIBUTE, None, (P_ENGINEIO, P_EIO3, P_SOCKETIO, "worker/drain.py"),
         "the disconnect reasons (python-engineio >= 4.11)"),
    Hook("engineio.json:_safe_int", CALL, ("s",), (P_CORE_JSON,), "loads' parse_int, reused"),
    Hook("engineio.json:loads", ATTRIBUTE, None, (P_CORE_JSON,),
         "json.loads(s, parse_int=_safe_int) per packet decoded; dumps below: both replaced"),
    Hook("engineio.json:dumps", ATTRIBUTE, None, (P_CORE_JSON,), "json.dumps (star import)"),
    Hook("socketio.packet:Packet.data_is_binary", PATCH, ("data",),
         ("worker/protocol/core/binary_check.py", "worker/main.py", "worker/aio/main.py"),
         "a classmethod, asked by Packet.__init__ of every packet built with data; replaced "
         "on Packet itself by binary_check.data_is_binary (the same answers)"),
    Hook("engineio.base_server:default_logger", LAYOUT, None, ("worker/boot.py",),
         "the library's logger is named 'engineio.server'"),
    # ------------------------------------------------------------ python-engineio: a session
    Hook(f"{SOCKET}.queue", LAYOUT, None, (P_PING, P_WEBSOCKET_SERVE),
         "the OPEN packet, with pingInterval in its data, is the first thing put on it; "
         "python-engineio puts on it only with queue.put (each put starts the lazy writer)"),
    Hook(f"{SOCKET}._websocket_handler", OVERRIDE, ("ws",), (P_ENGINEIO,),
         "reads frames with ws.wait() (None at the end); its result is the WSGI response; "
         "an upgrade when connected is already set on entry; its writer sends each item it "
         "takes off the queue as ws.send(item.encode()) (a shared frame's rest, "
         "ws_frame.FrameRest, goes through it) and is the only other user of ws.send"),
    Hook(f"{SOCKET}._websocket_handler", COPY, ("ws",), (P_WEBSOCKET_SERVE,),
         "serve_websocket re-implements it under eventlet (the read timeout, the upgrade's "
         "probe exchange, the read loop and its end) with a writer green thread started when "
         "something is queued and ending when the queue is empty (LazyWriter), instead of one "
         "parked for the websocket's life"),
    Hook(f"{SOCKET}._websocket_handler", LAYOUT, None, (P_ENGINEIO, P_SERVER),
         "the session at each ws.wait(): in an upgrade (connected already set) upgrading "
         "and not upgraded until the UPGRADE packet, then upgraded and no longer upgrading "
         "before the next wait; a websocket-only session connected and upgraded at its "
         "first wait"),
    Hook(f"{SOCKET}._upgrade_websocket", OVERRIDE, ("environ", "start_response"),
         (P_ENGINEIO,),
         "handle_get_request's way to a websocket (an upgrade, or a websocket-only "
         "handshake): returns what _async['websocket'](self._websocket_handler, server) "
         "answers; an exception of the handler (ReadLater) comes out of it unchanged"),
    Hook(f"{SOCKET}.schedule_ping", OVERRIDE, (), (P_ENGINEIO, P_EIO3),
         "called by _handle_connect after the OPEN packet and after each PONG, to start the "
         "next ping cycle"),
    Hook(f"{SOCKET}._send_ping", COPY, (), (P_ENGINEIO,),
         "ConformantSocket._ping_now is its body without the sleep, run from a hub timer"),
    Hook(f"{SOCKET}.last_ping", LAYOUT, None, (P_ENGINEIO,),
         "set at construction (python-engineio >= 4.14) and to None while a ping cycle "
         "waits: schedule_ping starts a cycle only when it is set"),
    Hook(f"{SOCKET}.handle_get_request", OVERRIDE, ("environ", "start_response"),
         (P_ENGINEIO, P_EIO3)),
    Hook(f"{SOCKET}.handle_post_request", OVERRIDE, ("environ",), (P_ENGINEIO,),
         "re-implemented: reads and decodes the body itself, then receive() for each packet"),
    Hook(f"{SOCKET}.receive", OVERRIDE, ("pkt",), (P_ENGINEIO, P_EIO3)),
    Hook(f"{SOCKET}.send", OVERRIDE, ("pkt",), (P_EIO3, P_ENGINEIO),
         "every packet to one session goes through it (the OPEN packet, Server.send_packet, "
         "close's CLOSE); ConformantSocket's writes it straight to a websocket if it can"),
    Hook(f"{SOCKET}.close", OVERRIDE, ("wait", "abort", "reason"), (P_ENGINEIO,)),
    Hook(f"{SOCKET}.check_ping_timeout", OVERRIDE, (), (P_ENGINEIO, P_EIO3, P_SERVER,
                                                      P_HANDSHAKE),
         "False (and the session closed) when the client is gone"),
    Hook(f"{SOCKET}.poll", OVERRIDE, (), (P_EIO3,),
         "raises engineio.exceptions.QueueEmpty when nothing came in time; _handle_connect "
         "answers a polling handshake with what it returns"),
    Hook(f"{SOCKET}.server", ATTRIBUTE, None, (P_ENGINEIO, P_EIO3, P_SERVER)),
    Hook(f"{SOCKET}.sid", ATTRIBUTE, None, (P_ENGINEIO, P_EIO3, P_SERVER)),
    Hook(f"{SOCKET}.upgrading", ATTRIBUTE, None, (P_ENGINEIO, P_SERVER),
         "set by _websocket_handler when an upgrade's websocket opens (connected already set) "
         "and cleared when the UPGRADE packet (or a failed probe) ends it, before the next "
         "ws.wait(): upgrade_settled runs at that wait"),
    Hook(f"{SOCKET}.upgraded", ATTRIBUTE, None, (P_ENGINEIO, P_SERVER),
         "set with the UPGRADE packet, before upgrading is cleared; set at once (with "
         "connected) for a websocket-only session: upgrading or upgraded means the session "
         "already has its websocket"),
    Hook(f"{SOCKET}.closing", ATTRIBUTE, None, (P_ENGINEIO, P_SERVER)),
    Hook(f"{SOCKET}.closed", ATTRIBUTE, None, (P_ENGINEIO, P_SERVER, P_HANDSHAKE,
                                                "worker/main.py", MEMORY)),
    Hook(f"{SOCKET}.connected", ATTRIBUTE, None, (P_ENGINEIO,),
         "set by _handle_connect before a polling handshake's answer; False while a "
         "websocket-only handshake's _websocket_handler starts"),
    Hook("engineio.packet:Packet.encode", OVERRIDE, ("b64",), (P_CORE_EIO3,),
         "python-engineio's websocket writer encodes each packet with pkt.encode()"),
    # ------------------------------------------------------------ python-socketio: the server
    Hook(f"{SIO}._handle_eio_connect", OVERRIDE, ("eio_sid", "environ"),
         (P_SOCKETIO, P_SIOV4)),
    Hook(f"{SIO}._handle_eio_message", OVERRIDE, ("eio_sid", "data"), (P_SOCKETIO, P_SIOV4)),
    Hook(f"{SIO}._handle_eio_message", COPY, ("eio_sid", "data"), (P_SOCKETIO,),
         "_sioctl_dispatch repeats its dispatch by packet type after decoding (CONNECT, "
         "DISCONNECT, EVENT, ACK, binary ones into _binary_packet)"),
    Hook(f"{SIO}._handle_eio_disconnect", OVERRIDE, ("eio_sid", "reason"), (P_SOCKETIO,)),
    Hook(f"{SIO}._send_packet", OVERRIDE, ("eio_sid", "pkt"), (P_SIOV4, P_RECOVERY),
         "recovery: the CONNECT answer's data is python-socketio's {'sid': sid}"),
    Hook(f"{SIO}._send_packet", CALL, ("eio_sid", "pkt"), (P_SOCKETIO, FRAMEWORK)),
    Hook(f"{SIO}._send_eio_packet", OVERRIDE, ("eio_sid", "eio_pkt"), (P_SOCKETIO, FANOUT),
         "the manager's emit without a callback hands every recipient the same "
         "engineio.packet.Packet object through it (the shared frame is kept on that object); "
         "the fan-out calls it for a session that has no write_frame, or a closed one"),
    Hook("socketio.manager:Manager.emit", OVERRIDE,
         ("event", "data", "namespace", "room", "skip_sid", "callback", "to", "**kwargs"),
         (FANOUT,), "PubSubManager's local delivery calls it (super().emit in _handle_emit); "
         "FanoutMixin sits between the two in the manager's bases"),
    Hook("socketio.manager:Manager.emit", COPY,
         ("event", "data", "namespace", "room", "skip_sid", "callback", "to", "**kwargs"),
         (FANOUT,), "FanoutMixin.emit repeats it up to the packets (data as a list, skip_sid "
         "as a list, one EVENT packet encoded once, one engineio Packet per part); the "
         "per-recipient send differs"),
    Hook("socketio.manager:Manager.get_participants", CALL, ("namespace", "room"),
         (FANOUT, BURSTS), "(sid, eio_sid) of every recipient"),
    Hook(f"{SIO}._send_eio_packet", CALL, ("eio_sid", "eio_pkt"), (BURSTS,),
         "a burst's packets for a session that has no write_frame, or a closed one"),
    Hook(f"{MANAGER}._handle_emit", COPY, ("message",), (BURSTS,),
         "held_emit repeats what it hands Manager.emit for another worker's emit without a "
         "callback or binary attachments: message['data'] unwrapped (one item: the item; "
         "more: a tuple), namespace, room, skip_sid; PubSubManager._thread's dispatch (an "
         "emit whose host_id is not this manager's) is skipped for those"),
    Hook(f"{SIO}._handle_connect", OVERRIDE, ("eio_sid", "namespace", "data"),
         (P_SOCKETIO, P_SIOV4, FRAMEWORK, P_RECOVERY),
         "the socket's id is asked of eio.generate_id() within it (sio_v4 names v2 sockets)"),
    Hook(f"{AEIO}.generate_id", PATCH, (), (FRAMEWORK_IDS,),
         "replaced on the instance, a plain function as on Server"),
    Hook(f"{SIO}._handle_connect", CALL, ("eio_sid", "namespace", "data"),
         (P_SOCKETIO, P_SIOV4)),
    Hook(f"{SIO}._handle_connect", COPY, ("eio_sid", "namespace", "data"), (P_CORE_SIO,),
         "namespace_served repeats its test of whether a namespace is served"),
    Hook(f"{SIO}._handle_disconnect", CALL, ("eio_sid", "namespace", "reason"),
         (P_SOCKETIO,)),
    Hook(f"{SIO}._handle_disconnect", OVERRIDE, ("eio_sid", "namespace", "reason"),
         (P_RECOVERY,), "reason: python-engineio's reason string for a dropped session "
         "(transport close / transport error / ping timeout)"),
    Hook(f"{SIO}._handle_event", CALL, ("eio_sid", "namespace", "id", "data"), (P_SOCKETIO,)),
    Hook(f"{SIO}.emit", OVERRIDE, ("event", "data", "to", "room", "skip_sid", "namespace",
                                   "callback", "ignore_queue"), (P_SOCKETIO,),
         "counted for the metrics; send() and call() go through it"),
    Hook(f"{SIO}._handle_ack", CALL, ("eio_sid", "namespace", "id", "data"), (P_SOCKETIO,)),
    Hook(f"{SIO}._binary_packet", LAYOUT, None, (P_SOCKETIO, MEMORY),
         "a dict eio_sid -> the binary packet whose attachments are still coming"),
    Hook(f"{SIO}.environ", LAYOUT, None, (P_SOCKETIO, FRAMEWORK_IDS, MEMORY),
         "a dict eio_sid -> the WSGI environ of the session's handshake"),
    Hook(f"{SIO}.packet_class", ATTRIBUTE, None, (P_SOCKETIO, P_SIOV4, FRAMEWORK)),
    Hook(f"{SIO}.handlers", ATTRIBUTE, None, (P_SOCKETIO,)),
    Hook(f"{SIO}.namespace_handlers", ATTRIBUTE, None, (P_SOCKETIO, MEMORY)),
    Hook(f"{SIO}.manager_initialized", ATTRIBUTE, None, ("worker/redis_setup.py",),
         "the manager is initialized on the first connection unless this is set"),
    Hook(f"{SIO}.reason", ATTRIBUTE, None, (P_SOCKETIO,),
         "the disconnect reasons (python-socketio >= 5.12)"),
    Hook("socketio.base_server:default_logger", LAYOUT, None, ("worker/boot.py",),
         "the library's logger is named 'socketio.server'"),
    Hook("socketio:Namespace.trigger_event", OVERRIDE, ("event", "*args"), (FRAMEWORK,),
         "a disconnect handler is given (sid, reason) (python-socketio >= 5.12)"),
    Hook("socketio:AsyncNamespace.trigger_event", OVERRIDE, ("event", "*args"),
         (FRAMEWORK_AIO,),
         "awaited by AsyncServer; a disconnect handler is given (sid, reason)"),
    Hook("socketio:WSGIApp.engineio_app", ATTRIBUTE, None, ("worker/app_loader.py",),
         "where the loader finds the server inside a WSGIApp"),
    # ------------------------------------------------------------ eventlet
    Hook("eventlet.queue:LightQueue.queue", ATTRIBUTE, None, (SHARED_WRITES,),
         "the deque of a session queue's items (set by _init): its length is qsize(), read "
         "once per recipient of a fan-out without the calls through the queue wrappers"),
    Hook("eventlet.websocket:RFC6455WebSocket._sendlock", ATTRIBUTE, None,
         (SHARED_WRITES, CONNECTION),
         "the semaphore every write of a frame holds (send, and the pongs and close frames "
         "the reader writes): a shared frame is written directly only while it is free, and "
         "it is held while the rest of a partly written one waits in the queue; replaced by "
         "a connection.SendLock once the handshake is written, before anything sends"),
    Hook("eventlet.websocket:RFC6455WebSocket.socket", ATTRIBUTE, None, (SHARED_WRITES,),
         "the green socket the frames are written to; its fd (GreenSocket.fd, the "
         "non-blocking OS socket, or an ssl.SSLSocket under TLS) takes shared frames"),
    Hook("eventlet.websocket:RFC6455WebSocket.extensions", ATTRIBUTE, None, (SHARED_WRITES,),
         "the negotiated extensions: with permessage-deflate, frames differ per socket"),
    Hook("eventlet.websocket:RFC6455WebSocket._apply_mask", PATCH,
         ("data", "mask", "length", "offset"), ("worker/ws_mask.py", "worker/main.py"),
         "a static method; replaced by ws_mask.apply_mask"),
    Hook("eventlet.websocket:RFC6455WebSocket.socket", LAYOUT, None,
         ("worker/ws_reads.py", P_ENGINEIO),
         "replaced by ws_reads.BufferedReads: frames are read only through socket.recv(n) "
         "(any length up to n), written through socket.sendall, and python-engineio sets "
         "the read time limit with socket.settimeout (BufferedReads keeps it for the "
         "writes' waits for room too)"),
    Hook(f"{WSGI}:Server.__init__", CALL,
         ("socket", "address", "app", "log", "environ", "max_http_version", "protocol",
          "minimum_chunk_size", "log_x_forwarded_for", "keepalive", "log_output", "log_format",
          "url_length_limit", "debug", "socket_timeout", "capitalize_response_headers"),
         (HTTP,), "given a stand-in listener: it reads family and getsockname(), and serves "
         "https when the listener has do_handshake"),
    Hook(f"{WSGI}:Server.process_request", COPY, ("conn_state",), (HTTP,),
         "eventlet.wsgi's handler of one connection, run without its accept loop: its body "
         "is self.protocol(conn_state, self), which the worker runs as a bound __init__ call "
         "(no C-level call in an idle websocket's saved stack)"),
    Hook(f"{WSGI}:HttpProtocol.__init__", CALL, ("conn_state", "server"), (HTTP,),
         "serves the whole connection (setup, handle, finish)"),
    Hook(f"{WSGI}:Server.process_request", LAYOUT, None, (HTTP, CONNECTION),
         "conn_state is the list [address, socket, state]; a 4th item is carried along; "
         "state STATE_CLOSE makes the connection close after its request"),
    Hook(f"{WSGI}:Server.keepalive", ATTRIBUTE, None, (HTTP,),
         "read per request: False answers Connection: close from then on"),
    Hook(f"{WSGI}:STATE_IDLE", ATTRIBUTE, None, (HTTP, CONNECTION)),
    Hook(f"{WSGI}:STATE_CLOSE", ATTRIBUTE, None, (HTTP,)),
    Hook(f"{WSGI}:MAX_REQUEST_LINE", ATTRIBUTE, None, (HTTP,)),
    Hook(f"{WSGI}:HttpProtocol.handle_one_request", OVERRIDE, (), (CONNECTION,)),
    Hook(f"{WSGI}:HttpProtocol.setup", OVERRIDE, (), (CONNECTION,),
         "makes rfile and wfile on self.connection before the first request; wfile is only "
         "written, flushed and closed (replaced by a BufferedWriter over StallLimitedWrites)"),
    Hook(f"{WSGI}:HttpProtocol.wbufsize", ATTRIBUTE, None, (CONNECTION,),
         "the response file's buffer size (16 KiB)"),
    Hook(f"{WSGI}:HttpProtocol.client_address", ATTRIBUTE, None, (CONNECTION,),
         "the client's (address, port); a stalled write's log line names the address"),
    Hook(f"{WSGI}:HttpProtocol.get_environ", OVERRIDE, (), (CONNECTION,),
         "called once a request head is complete; environ['eventlet.input'] is an Input"),
    Hook(f"{WSGI}:HttpProtocol.finish", OVERRIDE, (), (CONNECTION,),
         "the end of the connection (closes its files and socket); deferred to the "
         "websocket's reader when a request handed its websocket over"),
    Hook(f"{WSGI}:HttpProtocol.environ", ATTRIBUTE, None, (CONNECTION,),
         "the request's environ, set before the app runs; its 'eventlet.posthooks' list is "
         "what eventlet.wsgi runs after the response (replaced by an empty one, and the "
         "hooks run at the websocket's end, when a request hands its websocket over)"),
    Hook(f"{WSGI}:HttpProtocol.conn_state", ATTRIBUTE, None, (CONNECTION,)),
    Hook(f"{WSGI}:HttpProtocol.close_connection", ATTRIBUTE, None, (CONNECTION,)),
    Hook(f"{WSGI}:HttpProtocol.rfile", ATTRIBUTE, None, (CONNECTION,),
         "replaced by an unbuffered file and closed once a websocket has the connection (its "
         "buffer freed); eventlet.wsgi reads no further request on a connection a websocket "
         "handled"),
    Hook(f"{WSGI}:HttpProtocol.wfile", ATTRIBUTE, None, (CONNECTION,),
         "replaced and closed as rfile (the websocket writes the socket)"),
    Hook(f"{WSGI}:HttpProtocol.connection", ATTRIBUTE, None, (CONNECTION,),
         "the connection's socket, whose unbuffered files keep its file references"),
    Hook(f"{WSGI}:HttpProtocol.headers", ATTRIBUTE, None, (CONNECTION,),
         "the parsed request head, replaced by an empty one once a websocket has the "
         "connection; read by eventlet.wsgi only to write a response"),
    Hook("eventlet.websocket:RFC6455WebSocket._msgs", ATTRIBUTE, None, (CONNECTION,),
         "a deque only the base WebSocket.wait reads; dropped from an RFC 6455 websocket, "
         "whose own wait() reads frames"),
    Hook("eventlet.websocket:WebSocket.wait", ATTRIBUTE, None, (CONNECTION,),
         "compared with the websocket's own wait(): _msgs is dropped only when it differs"),
    Hook("eventlet.websocket:RFC6455WebSocket.environ", ATTRIBUTE, None, (P_ENGINEIO,),
         "the upgrade request's WSGI environ (the HTTP server's websocket-opened callable)"),
    Hook(f"{WSGI}:Input.discard", OVERRIDE, ("buffer_size",), (CONNECTION,),
         "called after each response to drain the unread body; OSError closes instead"),
    Hook("eventlet.hubs.hub:BaseHub.timers", ATTRIBUTE, None, (MEMORY,)),
    Hook("eventlet.hubs.hub:BaseHub.next_timers", ATTRIBUTE, None, (MEMORY,)),
    # ------------------------------------------------------------ gunicorn
    Hook("gunicorn.app.base:Application.load_config", OVERRIDE, (), ("cli/config.py",)),
    Hook("gunicorn.app.base:Application.init", OVERRIDE, ("parser", "opts", "args"),
         ("cli/config.py",)),
    Hook("gunicorn.app.base:Application.load", OVERRIDE, (), ("cli/config.py",)),
    Hook("gunicorn.app.base:Application.load_config_from_file", CALL, ("filename",),
         ("cli/config.py",), "returns the names the file set; loader.cfg.settings holds them"),
) + MANAGER_HOOKS + ASYNCIO_HOOKS + WEBSOCKET_HOOKS + GREEN_HOOKS

# Mixins that sioctl puts on a library's class (by building a subclass of the live object's
# class), so their methods override that class's: "sioctl module:Class" -> library target.
MIXINS: dict[str, str] = {
    "sioctl.worker.protocol.engineio_server:ConformantEngineMixin": EIO,
    "sioctl.worker.protocol.eio3_handshake:Eio3DoorMixin": EIO,
    "sioctl.worker.protocol.ping_interval:ExactPingIntervalMixin": EIO,
    "sioctl.worker.protocol.socketio_rules:ConformantServerMixin": SIO,
    "sioctl.worker.protocol.sio_v4:SocketIOv4Mixin": SIO,
    "sioctl.worker.protocol.async_engineio:AsyncConformantEngineMixin": AEIO,
    "sioctl.worker.protocol.async_socketio:AsyncConformantServerMixin": ASIO,
    # The door's part on python-engineio's base_server methods (_ok), for both engines.
    "sioctl.worker.protocol.eio3_handshake:Eio3DoorBase": EIO,
    # generate_id (a v2 client's socket id), for both engines.
    "sioctl.worker.protocol.engineio_server:NextSocketIdMixin": EIO,
    # _log_error_once of an unknown session (INFO, not ERROR), for both engines.
    "sioctl.worker.protocol.engineio_server:UnknownSessionLogMixin": EIO,
    "sioctl.worker.protocol.async_eio3:AsyncEio3DoorMixin": AEIO,
    "sioctl.worker.protocol.async_eio3:AsyncSocketIOv4Mixin": ASIO,
    "sioctl.worker.messaging.base:SioctlManagerBase": MANAGER,
    "sioctl.worker.messaging.recovering:RecoveryMixin": MANAGER,
    "sioctl.worker.protocol.recovery:RecoveryServerMixin": SIO,
    "sioctl.worker.protocol.recovery:AsyncRecoveryServerMixin": ASIO,
    # The header deadline of later requests on a kept-alive connection (asyncio engine).
    "sioctl.worker.aio.head_deadline:HeadDeadlineMixin": UVICORN_HTTP,
    # A response the client does not read ends its connection (asyncio engine).
    "sioctl.worker.aio.write_stall:WriteStallMixin": UVICORN_HTTP,
    # Less held per idle websocket (asyncio engine, issue 19).
    "sioctl.worker.aio.ws_protocol:LeanWebSocketMixin": UVICORN_WS,
    # The asyncio session's direct writes: its send() (issue 15/19, the echo's ack path).
    "sioctl.worker.protocol.shared_writes:AsyncSharedWrites": ASOCKET,
    "sioctl.worker.aio.ws_protocol:LeanUpgradeMixin": UVICORN_HTTP,
}


def private_hooks() -> list[Hook]:
    """The entries whose member is private to its library (a leading underscore)."""
    return [hook for hook in HOOKS if hook.name.startswith("_") and not hook.name.startswith("__")]
