"""Connections the master must look at before it knows their slot (see client_address.py).

Each waits here, non-blocking, until its PROXY header or request head has arrived, at most
INSPECT_TIMEOUT seconds and a bounded number of bytes; a peer that sends nothing, too little
or garbage is closed and counted, and never holds up the accept loop or anyone else.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from .client_address import (
    HEAD_MAX,
    NEED_MORE,
    V1_MAX,
    V2_MAX,
    BadHeader,
    ProxyHeader,
    TrustedProxies,
    forwarded_client,
    parse_proxy_header,
)

INSPECT_TIMEOUT = 5.0
# An incomplete header is looked at again this often (it stays readable: peeking takes nothing).
RECHECK = 0.02


@dataclass
class Inspection:
    conn: socket.socket
    # The TCP peer: the proxy, when there is one.
    peer: tuple[str, int]
    deadline: float
    # After a PROXY header: the address it names (the client's).
    address: tuple[str, int] | None = None


class Outcome:
    """What became of an inspection: ``address`` to dispatch, or ``error`` to close."""

    def __init__(self, address: tuple[str, int] | None = None, error: str | None = None):
        self.address = address
        self.error = error


WAIT = Outcome()


class Inspector:
    """Reads PROXY headers (``proxy_protocol``) and trusted forwarded headers."""

    def __init__(self, proxy_protocol: bool, trusted: TrustedProxies) -> None:
        self.proxy_protocol = proxy_protocol
        self.trusted = trusted
        self.pending: dict[int, Inspection] = {}
        self.errors = 0
        self.timeouts = 0

    def needed(self, peer: tuple[str, int]) -> bool:
        """True when a connection from ``peer`` must be inspected before it is dispatched."""
        return self.proxy_protocol or self.trusted.trusts(peer[0])

    def start(self, conn: socket.socket, peer: tuple[str, int]) -> Inspection:
        # Never wait in the master's loop for a peer's bytes.
        conn.setblocking(False)
        inspection = Inspection(conn, peer, time.monotonic() + INSPECT_TIMEOUT)
        self.pending[conn.fileno()] = inspection
        return inspection

    def step(self, inspection: Inspection) -> Outcome:
        """Look at what has arrived: WAIT, or an Outcome with the address or an error."""
        conn = inspection.conn
        try:
            if self.proxy_protocol and inspection.address is None:
                data = conn.recv(V2_MAX, socket.MSG_PEEK)
                if not data:
                    return self._error("closed before its PROXY header")
                header = parse_proxy_header(data)
                if header is NEED_MORE:
                    return self._wait(inspection, len(data) >= max(V1_MAX, V2_MAX))
                assert isinstance(header, ProxyHeader)
                conn.recv(header.length)  # consume exactly the header; the rest is the worker's
                inspection.address = header.address or inspection.peer
            address = inspection.address or inspection.peer
            # Forwarded headers count only from a trusted TCP peer (the proxy itself).
            if self.trusted.trusts(inspection.peer[0]):
                head = conn.recv(HEAD_MAX, socket.MSG_PEEK)
                if not head:
                    return self._error("closed before its request")
                client = forwarded_client(head, self.trusted)
                if client is NEED_MORE:
                    return self._wait(inspection, False)
                if isinstance(client, str):
                    address = (client, 0)
        except BlockingIOError:
            return self._wait(inspection, False)
        except BadHeader as exc:
            return self._error(str(exc))
        except OSError as exc:
            return self._error(exc.strerror or str(exc))
        return Outcome(address=address)

    def _wait(self, inspection: Inspection, too_much: bool) -> Outcome:
        if too_much:
            return self._error("header too long")
        if time.monotonic() >= inspection.deadline:
            self.timeouts += 1
            return Outcome(error=f"no complete header within {INSPECT_TIMEOUT:g}s")
        return WAIT

    def _error(self, reason: str) -> Outcome:
        self.errors += 1
        return Outcome(error=reason)

    def finish(self, inspection: Inspection) -> None:
        self.pending.pop(inspection.conn.fileno(), None)
