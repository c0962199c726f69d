"""Engine.IO v4 / Socket.IO v5 as the specifications say, on top of python-engineio/socketio.

The worker installs these on the app's server when it loads it: python-engineio and
python-socketio keep doing the work, and the small deviations from the specifications
(listed in docs/design.md, "Protocol conformance") are corrected around them. Nothing here
imports eventlet, so the modules stay importable anywhere.
"""

from __future__ import annotations

from typing import Any

from sioctl.cluster.settings import default

from . import eio3_handshake, engineio_rules, ping_interval, sio_v4, socketio_rules

# The reference server's default connectTimeout (the --connect-timeout default): a session that
# has not sent its first CONNECT by then is closed.
DEFAULT_CONNECT_TIMEOUT: float = default("connect_timeout")


def install(
    server: Any, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, allow_eio3: bool = False
) -> None:
    """Make ``server`` (a socketio.Server, possibly the user's subclass) and its engine.io
    server follow the specifications; sessions created from now on are covered. With
    ``allow_eio3``, Socket.IO v2 clients (Engine.IO 3) are served too; without it their
    handshake gets a 400 saying how to allow them."""
    ping_interval.fix_ping_interval(server.eio)
    engineio_rules.make_conformant(server.eio)
    eio3_handshake.install(server.eio, allow_eio3)
    socketio_rules.make_conformant(server, connect_timeout, (sio_v4.SocketIOv4Mixin,))
