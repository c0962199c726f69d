"""The gateway on eventlet: :class:`~.plugin.GatewayCore`'s flows run with plain calls on a
``socketio.Server`` and a :class:`~.registry.Registry` (its asyncio twin: async_gateway.py)."""

from __future__ import annotations

from typing import Any

from sioctl.worker.flow import run

from .plugin import DISCONNECT_DELAY, NAMESPACE, SWEEP_EVERY, GatewayCore


class Gateway(GatewayCore):
    """The gateway on eventlet: each flow run with plain calls on a ``socketio.Server`` and a
    :class:`~.registry.Registry`."""

    def check_handshake(self, auth: Any, sid: str | None = None) -> str | None:
        """Why the handshake must be refused, or None. Apps with ``handshake_sign`` demand a
        signed ``auth`` ({app, timestamp, sign}); a handshake naming an app must sign for it.
        ``sid`` is the socket being connected (the owner of an md5 signature it uses first)."""
        return run(self.handshake(auth, sid))

    def on_connect(
        self, sid: str, socket: Any, auth: Any, vouched_user_id: str | None = None
    ) -> None:
        """Give the new socket its userId, register it, and tell it with ``saveId``.

        The userId is a fresh uuid4 unless the claim is proven (see the module docstring):
        ``vouched_user_id`` (set by the app's connection middleware) or a uuid in ``auth.userId``
        of a signed handshake."""
        run(self.connect(sid, socket, auth, vouched_user_id))

    def on_disconnect(self, sid: str) -> None:
        run(self.disconnect(sid))

    def refresh(self) -> None:
        """See :meth:`GatewayCore.refreshing`."""
        run(self.refreshing())

    def handle(self, sid: str, args: list[Any]) -> Any:
        """Handle one ``requestMessage``; returns the acknowledgement for the sender."""
        return run(self.request(sid, args))

    def check_replay(self, app: str, nonce: Any, sign: Any, owner: str | None) -> None:
        """See :meth:`GatewayCore.replay_check`."""
        run(self.replay_check(app, nonce, sign, owner))

    def deliver(self, target: str, message: dict[str, Any]) -> str | None:
        """See :meth:`GatewayCore.delivery`."""
        return run(self.delivery(target, message))

    def _refresh_forever(self) -> None:
        while True:
            self.server.sleep(SWEEP_EVERY)
            run(self.ticking())

    def _disconnect_soon(self, sid: str) -> None:
        self.server.sleep(DISCONNECT_DELAY)
        self.server.disconnect(sid, namespace=NAMESPACE)
