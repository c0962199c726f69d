"""The engine-free core of the protocol rules: what the Engine.IO / Socket.IO specifications
decide, as pure functions and small state machines over plain values.

Nothing in this package touches a socket, a green thread, an event, a timer or a server
object: its functions take packet bytes or text, query dicts, method and transport strings,
flags read off a session, and clock readings passed in, and return decisions (a problem
message to answer 400 with, packets to deliver, "close the session", "the next ping is due at
t"). python-engineio's and python-socketio's ``packet`` modules are used as value codecs,
``engineio.exceptions`` for the errors python-engineio already turns into a 400; nothing else
of those libraries, and never eventlet (tests/unit/worker/protocol/test_protocol_seam.py checks
the import graph).

The shells are the modules one level up (``worker/protocol/*.py``): the mixins put on the
library's server and session classes, which read the values off the live objects, call the
core, and carry out its decisions with the engine's means (an eventlet hub timer, an event, a
``close(wait=False)``). An asyncio engine adds async shells over the same core; the hooks such
a shell must supply are listed in docs/design.md ("Protocol rules: core and shells").

Modules:

- :mod:`.eio_rules`: Engine.IO v4 packets, payloads, websocket frames, POST bodies, the
  request-level 400/413 decisions, the session sweep's decisions;
- :mod:`.eio_session`: :class:`~.eio_session.SessionRules`, one session's transport state
  (active GET/POST, client CLOSE, upgrade under way, the ping cycle), and the advertised ping
  interval;
- :mod:`.eio3_rules`, :mod:`.eio3_payload`: Engine.IO protocol 3 (Socket.IO v2 clients): the
  handshake's door, the v3 heartbeat, packet and payload framing;
- :mod:`.sio_rules`: Socket.IO v5 packet validation, attachments, namespaces;
- :mod:`.sio_connect`: :class:`~.sio_connect.ConnectState`, the CONNECT-first rule and the
  connect timeout's deadlines;
- :mod:`.sio_v4`: the Socket.IO protocol v4 rewrites for v2 clients;
- :mod:`.nesting`: how deep JSON-like data nests, without recursion.
"""
