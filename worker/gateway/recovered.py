"""The gateway under connection state recovery (issue 18): a socket that comes back keeps its
userId, how it was proven, its app and the app its handshake was signed for.

The gateway keeps that state in the socket's python-socketio user session (under
:data:`SESSION_KEY`), which the Redis manager writes into the socket's session record and
gives back to the restored socket before its connect handler runs; the gateway's connect then
claims the userId again (``plugin.GatewayCore.connect``), with the strength it had: the
registry gives it back unless a live socket took it meanwhile (then the socket gets a fresh
uuid and a ``saveId``, as any unproven claim).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .plugin import Client

# The key of the gateway's state in a socket's python-socketio session.
SESSION_KEY = "sioctl.gateway"
NAMESPACE = "/"


def session_of(server: Any, sid: str) -> dict[str, Any] | None:
    """python-socketio's user session of ``sid`` in the gateway's namespace (the live dict),
    read directly (``get_session`` is a coroutine on asyncio); None when the socket is gone."""
    eio_sid = server.manager.eio_sid_from_sid(sid, NAMESPACE)
    socket = server.eio.sockets.get(eio_sid) if eio_sid else None
    session = getattr(socket, "session", None)
    return session.setdefault(NAMESPACE, {}) if isinstance(session, dict) else None


def remember(server: Any, sid: str, client: Client) -> None:
    """Keep ``client``'s userId, proof and app in the session of ``sid`` (called whenever one
    changes: connect, an app binding, ``reconnectAndUpdates``)."""
    session = session_of(server, sid)
    if session is not None:
        session[SESSION_KEY] = {"user": client.user_id, "app": client.app,
                                "signed_app": client.signed_app, "vouched": client.vouched}


def saved(server: Any, sid: str) -> Client | None:
    """What :func:`remember` kept of socket ``sid`` when it came back by connection state
    recovery (``manager.recovered``), else None (a new socket, or recovery off)."""
    from .plugin import Client

    is_recovered = getattr(server.manager, "recovered", None)
    if not (callable(is_recovered) and is_recovered(sid, NAMESPACE)):
        return None
    state = (session_of(server, sid) or {}).get(SESSION_KEY)
    if not isinstance(state, dict) or not isinstance(state.get("user"), str):
        return None
    app, signed_app = state.get("app"), state.get("signed_app")
    # The app its handshake was signed for, as checked when it first connected (the rights of
    # apps that demand a signed handshake follow it).
    return Client(state["user"], app if isinstance(app, str) else None,
                  signed_app=signed_app if isinstance(signed_app, str) else None,
                  vouched=state.get("vouched") is True)
