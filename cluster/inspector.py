"""Connections the master must look at before it knows their slot (see client_address.py).

Each waits here, non-blocking, until its PROXY header or request head has arrived, at most
INSPECT_TIMEOUT seconds and a bounded number of bytes; a peer that sends nothing, too little
or garbage is closed and counted, and never holds up the accept loop or anyone else.

A waiting connection costs the master nothing until more bytes arrive: after peeking at the
``n`` bytes it has, the master sets the socket's receive low-water mark (``SO_RCVLOWAT``) to
``n + 1``, so the selector reports it again only when the next byte is in (or the peer closes),
and the peeked bytes stay unread for the worker (a peer that half-closes keeps its socket
readable: it is no longer watched, and its deadline closes it). Deadlines need no scan either: every
inspection gets the same timeout, so ``pending`` (insertion-ordered) is ordered by deadline and
only its front is ever looked at.

Two caps bound what slow peers can hold (past either, a connection that would have to wait is
closed at once and counted as ``refused``; one whose header is already complete never is):

- ``PEER_LIMIT`` connections waiting per client address known so far: the TCP peer, or the
  address a PROXY header named. Trusted proxies (``--forwarded-allow-ips``) are exempt: every
  client comes through them, so a per-peer cap would cut the proxy itself.
- ``total_limit`` connections waiting in all (the arbiter lowers it below the open-file limit).
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
# The peer of a connection on a Unix listener: no address, and a trusted proxy (as gunicorn
# trusts Unix peers): the socket file's permissions decide who may connect, so its PROXY header
# or forwarded headers name the client; without them the connection keeps this address (slot 0).
UNIX_PEER = ("", 0)
# Connections one client address may have waiting for their header (see the module docstring).
PEER_LIMIT = 256
# Connections all peers together may have waiting.
TOTAL_LIMIT = 10000
HEAD_END = b"\r\n\r\n"


@dataclass
class Inspection:
    conn: socket.socket
    # The TCP peer: the proxy, when there is one.
    peer: tuple[str, int]
    deadline: float
    # After a PROXY header: the address it names (the client's).
    address: tuple[str, int] | None = None
    # The address this inspection counts against for PEER_LIMIT while it waits ("" when it
    # counts against none: a trusted proxy), None while it is not waiting.
    held_by: str | None = None
    # How much of the request head was searched for its end already.
    scanned: int = 0
    # The socket's SO_RCVLOWAT as set here (1 is the kernel's default).
    low_water: int = 1
    # Bytes of the header seen at the last look (-1: none yet, in this stage).
    have: int = -1


class Outcome:
    """What became of an inspection: ``address`` to dispatch, or ``error`` to close."""

    def __init__(self, address: tuple[str, int] | None = None, error: str | None = None):
        self.address = address
        self.error = error


WAIT = Outcome()
# Still incomplete, and readable without a byte more: the peer half-closed (EOF keeps a socket
# readable whatever its low-water mark). Nothing more will come; stop watching it, its deadline
# closes it.
PARK = Outcome()


class Inspector:
    """Reads PROXY headers (``proxy_protocol``) and trusted forwarded headers."""

    def __init__(self, proxy_protocol: bool, trusted: TrustedProxies,
                 peer_limit: int = PEER_LIMIT, total_limit: int = TOTAL_LIMIT) -> None:
        self.proxy_protocol = proxy_protocol
        self.trusted = trusted
        self.peer_limit = peer_limit
        self.total_limit = total_limit
        # fd -> inspection, in the order they started, which is the order of their deadlines.
        self.pending: dict[int, Inspection] = {}
        # Waiting inspections per client address (trusted proxies not counted).
        self.waiting: dict[str, int] = {}
        self.waiting_total = 0
        self.errors = 0
        self.timeouts = 0
        self.refused = 0

    def needed(self, peer: tuple[str, int]) -> bool:
        """True when a connection from ``peer`` must be inspected before it is dispatched."""
        return self.proxy_protocol or self._trusts(peer[0])

    def _trusts(self, host: str) -> bool:
        """A trusted proxy: listed in --forwarded-allow-ips, or a Unix peer."""
        return host == UNIX_PEER[0] or self.trusted.trusts(host)

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
                    return self._wait(inspection, len(data), len(data) >= max(V1_MAX, V2_MAX))
                assert isinstance(header, ProxyHeader)
                conn.recv(header.length)  # consume exactly the header; the rest is the worker's
                inspection.address = header.address or inspection.peer
                inspection.have = -1
            address = inspection.address or inspection.peer
            # Forwarded headers count only from a trusted TCP peer (the proxy itself).
            if self._trusts(inspection.peer[0]):
                head = conn.recv(HEAD_MAX, socket.MSG_PEEK)
                if not head:
                    return self._error("closed before its request")
                # Only the bytes new since the last look can complete the head.
                if head.find(HEAD_END, max(0, inspection.scanned - 3)) < 0:
                    inspection.scanned = len(head)
                    if len(head) < HEAD_MAX:
                        return self._wait(inspection, len(head), False)
                client = forwarded_client(head, self.trusted)
                if client is NEED_MORE:
                    return self._wait(inspection, len(head), False)
                if isinstance(client, str):
                    address = (client, 0)
        except BlockingIOError:
            return self._wait(inspection, 0, False)
        except BadHeader as exc:
            return self._error(str(exc))
        except OSError as exc:
            return self._error(exc.strerror or str(exc))
        if inspection.low_water != 1:
            _set_low_water(inspection, 1)  # the worker reads it as usual
        return Outcome(address=address)

    def _wait(self, inspection: Inspection, have: int, too_much: bool) -> Outcome:
        if too_much:
            return self._error("header too long")
        if time.monotonic() >= inspection.deadline:
            self.timeouts += 1
            return Outcome(error=f"no complete header within {INSPECT_TIMEOUT:g}s")
        if have == inspection.have:
            return PARK
        inspection.have = have
        refusal = self._hold(inspection)
        if refusal is not None:
            self.refused += 1
            return Outcome(error=refusal)
        # Readable again only once a byte more than it has now is in (or on EOF / error).
        if not _set_low_water(inspection, have + 1):
            return self._error("cannot wait for its header")
        return WAIT

    def _hold(self, inspection: Inspection) -> str | None:
        """Count a waiting inspection against its client address and the total; the reason
        to refuse it when either is full, else None."""
        host = (inspection.address or inspection.peer)[0]
        key = "" if self._trusts(host) else host
        if inspection.held_by == key:
            return None
        if inspection.held_by is None:
            if self.waiting_total >= self.total_limit:
                return f"{self.total_limit} connections are waiting for their header (the limit)"
        if key and self.waiting.get(key, 0) >= self.peer_limit:
            self._release(inspection)
            return (f"{self.peer_limit} connections from {key} are waiting for their header "
                    "(the limit)")
        self._release(inspection)
        inspection.held_by = key
        self.waiting_total += 1
        if key:
            self.waiting[key] = self.waiting.get(key, 0) + 1
        return None

    def _release(self, inspection: Inspection) -> None:
        key = inspection.held_by
        if key is None:
            return
        inspection.held_by = None
        self.waiting_total -= 1
        if key:
            left = self.waiting[key] - 1
            if left:
                self.waiting[key] = left
            else:
                del self.waiting[key]

    def _error(self, reason: str) -> Outcome:
        self.errors += 1
        return Outcome(error=reason)

    def finish(self, inspection: Inspection) -> None:
        """Forget an inspection that was dispatched or is being closed."""
        self._release(inspection)
        self.pending.pop(inspection.conn.fileno(), None)

    def next_deadline(self) -> float | None:
        """The earliest deadline of a pending inspection, None when there is none."""
        for inspection in self.pending.values():
            return inspection.deadline
        return None

    def due(self, now: float) -> list[Inspection]:
        """The pending inspections whose deadline has passed (the front of ``pending``)."""
        expired = []
        for inspection in self.pending.values():
            if inspection.deadline > now:
                break
            expired.append(inspection)
        return expired


def _set_low_water(inspection: Inspection, size: int) -> bool:
    """Make the connection readable for the selector only once ``size`` bytes are in; False
    if the socket refuses (it is then closed as an error rather than left to spin the loop)."""
    if inspection.low_water == size:
        return True
    try:
        inspection.conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)
    except OSError:
        return False
    inspection.low_water = size
    return True
