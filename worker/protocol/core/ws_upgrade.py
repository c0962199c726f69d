"""What a session's websocket reader decides from the frames it reads, for both engines'
handlers (``worker/protocol/websocket_serve.py``, ``async_websocket.py``): the size limit on
one frame and the two frames of an upgrade's probe exchange (Engine.IO v4 > Upgrade)."""

from __future__ import annotations

from typing import Any

from engineio import packet


def frame_too_large(data: str | bytes | None, limit: int) -> bool:
    """Whether a frame read is over ``max_http_buffer_size`` (the read then fails, as in
    python-engineio)."""
    return bool(data) and len(data) > limit  # type: ignore[arg-type]


def is_probe(data: str | bytes | None) -> bool:
    """Whether ``data`` is the upgrade's first frame: a PING packet with the data ``probe``."""
    pkt = packet.Packet(encoded_packet=data)
    return pkt.packet_type == packet.PING and pkt.data == "probe"


def is_upgrade(data: str | bytes | None) -> bool:
    """Whether ``data`` is an UPGRADE packet (the upgrade's last frame)."""
    return packet.Packet(encoded_packet=data).packet_type == packet.UPGRADE


def settle(session: Any, logger: Any, data: Any) -> bool:
    """End an upgrade with the client's frame after the probe (``data``): True, the session
    upgraded, when it is the UPGRADE packet; False, logged as python-engineio logs it, and the
    session left on polling, otherwise."""
    session.upgrading = False
    if not is_upgrade(data):
        session.upgraded = False
        logger.info("%s: Failed websocket upgrade, expected UPGRADE packet, received %s "
                    "instead.", session.sid, data)
        return False
    session.upgraded = True
    return True
