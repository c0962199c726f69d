"""The library contract's part for python-socketio's pub/sub manager, which sioctl's Redis
managers (``worker/messaging``) subclass: the methods they override or call, the attributes and
layouts they read. ``library_contract.HOOKS`` includes it; see that module."""

from __future__ import annotations

from .contract_terms import (
    ATTRIBUTE,
    CALL,
    COPY,
    FRAMEWORK_IDS,
    LAYOUT,
    MANAGER,
    MEMORY,
    MESSAGING,
    MESSAGING_BASE,
    MESSAGING_RECOVERY,
    OVERRIDE,
    SOCKET,
    Hook,
)

MANAGER_HOOKS: tuple[Hook, ...] = (
    Hook(f"{MANAGER}.rooms", LAYOUT, None, (FRAMEWORK_IDS, MESSAGING, MESSAGING_BASE, MEMORY),
         "rooms[namespace][None] holds every connected socket: {sid: eio_sid}"),
    Hook(f"{MANAGER}.eio_to_sid", ATTRIBUTE, None, (MEMORY,)),
    Hook(f"{MANAGER}.callbacks", ATTRIBUTE, None, (MEMORY,)),
    Hook(f"{MANAGER}.pending_disconnect", ATTRIBUTE, None, (MEMORY,)),
    Hook(f"{MANAGER}._publish", OVERRIDE, ("data",), (MESSAGING, "worker/gateway/external.py"),
         "every message to other workers goes through it (ExternalGateway's cluster emitter "
         "SPUBLISHes it)"),
    Hook(f"{MANAGER}.emit", OVERRIDE,
         ("event", "data", "namespace", "room", "skip_sid", "callback", "to", "**kwargs"),
         (MESSAGING,), "a plain emit to another worker's socket is queued directly "
         "(SioctlManagerBase._direct_emit); anything else is python-socketio's emit"),
    Hook(f"{MANAGER}.emit", COPY,
         ("event", "data", "namespace", "room", "skip_sid", "callback", "to", "**kwargs"),
         (MESSAGING_BASE,), "_direct_emit builds the message emit() builds for an emit "
         "without a callback or binary data (data as a list: a tuple's items, else [data]; "
         "method, event, data, binary, namespace, room, skip_sid, callback, host_id)"),
    Hook(f"{MANAGER}._publish", LAYOUT, None, (MESSAGING,),
         "its messages: emit carries room and namespace; disconnect, enter_room and "
         "leave_room carry sid; callback carries host_id; all carry method and host_id"),
    Hook(f"{MANAGER}._handle_emit", OVERRIDE, ("message",), (MESSAGING_RECOVERY,),
         "emit() calls it with its own message before publishing it (the local delivery); "
         "it expands message['data'] (a list of arguments; binary: [arguments with "
         "placeholders, *base64 attachments]) into Manager.emit's room/skip_sid/callback"),
    Hook(f"{MANAGER}.basic_enter_room", OVERRIDE, ("sid", "namespace", "room", "eio_sid"),
         (MESSAGING_RECOVERY,), "every join goes through it (pre_connect's too)"),
    Hook(f"{MANAGER}.basic_leave_room", OVERRIDE, ("sid", "namespace", "room"),
         (MESSAGING_RECOVERY,)),
    Hook(f"{MANAGER}.get_rooms", CALL, ("sid", "namespace"), (MESSAGING_RECOVERY,),
         "every room of sid, its own sid room included (None left out)"),
    Hook(f"{MANAGER}.eio_sid_from_sid", CALL, ("sid", "namespace"), (MESSAGING_RECOVERY,)),
    Hook(f"{SOCKET}.session", LAYOUT, None, (MESSAGING_RECOVERY,),
         "a dict namespace -> python-socketio's user session of that namespace"),
    Hook(f"{MANAGER}._listen", OVERRIDE, (), (MESSAGING,),
         "a generator of received messages, read by the thread initialize() starts"),
    Hook(f"{MANAGER}._get_logger", CALL, (), (MESSAGING, MESSAGING_BASE)),
    Hook(f"{MANAGER}.json", ATTRIBUTE, None, (MESSAGING_BASE,),
         "the server's JSON module, set by set_server (python-socketio >= 5.16.1)"),
    Hook(f"{MANAGER}.host_id", ATTRIBUTE, None,
         (MESSAGING, MESSAGING_BASE, "worker/messaging/queries.py"),
         "this manager's id in its messages"),
    Hook(f"{MANAGER}.initialize", OVERRIDE, (), (MESSAGING,)),
    Hook(f"{MANAGER}.pre_connect", OVERRIDE, ("eio_sid", "namespace"), (MESSAGING,)),
    Hook(f"{MANAGER}.connect", OVERRIDE, ("sid", "namespace"), (MESSAGING,)),
    Hook(f"{MANAGER}.basic_disconnect", OVERRIDE, ("sid", "namespace", "**kwargs"),
         (MESSAGING_BASE, MESSAGING_RECOVERY),
         "recovery: the socket's rooms are still there when it is called"),
    Hook(f"{MANAGER}.is_pre_connected", CALL, ("sid", "namespace"),
         (MESSAGING, MESSAGING_BASE)),
    Hook(f"{MANAGER}.is_connected", CALL, ("sid", "namespace"),
         (MESSAGING, MESSAGING_BASE)),
    Hook(f"{MANAGER}.channel", ATTRIBUTE, None,
         (MESSAGING, MESSAGING_BASE, "worker/messaging/queries.py")),
    Hook(f"{MANAGER}.server", ATTRIBUTE, None, (MESSAGING, "worker/messaging/queries.py"),
         "the socketio.Server, set by set_server"),
)
