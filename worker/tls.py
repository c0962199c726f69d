"""TLS for workers started with certfile/keyfile: the worker terminates TLS itself.

The master passes the raw TCP connection, so it still picks the slot from the client address;
the handshake happens in the worker, in the connection's own green thread.
"""

from __future__ import annotations

import ssl

from sioctl.cluster.settings import Settings
from sioctl.worker.errors import BootError

# A client that opens a connection and never completes the handshake is dropped after this.
HANDSHAKE_TIMEOUT = 10.0


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The server-side TLS context, or None without certfile/keyfile; raises BootError."""
    if not settings.certfile or not settings.keyfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.certfile, settings.keyfile)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise BootError(
            f"cannot load certfile {settings.certfile!r} / keyfile {settings.keyfile!r}: {reason}"
        ) from None
    return context
