"""Where each client connection goes: accept, inspect if needed, queue in its slot, hand it over.

The router owns the listeners, the inspector (PROXY protocol / trusted-proxy headers) and each
slot's queue of waiting connections. It hands a slot's queue to the slot's worker whenever that
worker can take it (ready, not stalled, channel not full); which worker a slot has is the
supervisor's business. The master never reads a client connection's bytes past the inspection:
it accepts, picks the slot from the client address and passes the descriptor. This is the hot
path: per connection, one accept, one slot choice, one ``send_fds`` and one close.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import time

from . import channel
from .inspector import PARK, UNIX_PEER, WAIT, Inspection, Inspector, Outcome
from .listeners import close_listener, display_address, open_listeners, socket_file
from .reactor import Reactor
from .slots import Slot, slot_for_address
from .worker_process import READY, WorkerProcess

log = logging.getLogger("sioctl.master")

# Connections accepted per readiness event, so one busy listener cannot starve the others.
ACCEPT_BURST = 64
# How long accepting pauses when the process runs out of file descriptors.
EMFILE_PAUSE = 0.5
# How soon a hand-off that failed for a passing reason (ETOOMANYREFS, ENOBUFS) is tried again.
HANDOFF_RETRY = 0.1


class Router:
    """Accepts client connections and routes each to its slot's worker."""

    def __init__(self, reactor: Reactor, slots: list[Slot], inspector: Inspector,
                 pending_total_limit: int) -> None:
        self.reactor = reactor
        self.slots = slots
        # How many slots clients are hashed over: len(slots), except while slots added by a
        # scale-up wait for their first worker (see Supervisor.scale).
        self.routing = len(slots)
        self.inspector = inspector
        # The per-slot bound alone would let one stuck slot use up every descriptor and stop
        # accepting for all; the total stays below the open-file limit.
        self.pending_total_limit = pending_total_limit
        # The descriptors the queues may hold at most (limit_descriptors), whatever the count
        # of slots; None until known.
        self.descriptor_cap: int | None = None
        self.listeners: list[socket.socket] = []
        self.socket_files: dict[int, tuple[str, int] | None] = {}
        self.listening = False
        self.closed = False
        self.last_inspect_log = 0.0
        self.warned_unnamed = False

    def open(self, binds: list[str], backlog: int) -> None:
        """Open the listening sockets (raises ListenError); accepting starts later."""
        self.listeners = open_listeners(binds, backlog)
        # Unix listeners' socket files, removed when they close.
        self.socket_files = {sock.fileno(): socket_file(sock) for sock in self.listeners}

    def addresses(self, scheme: str = "http") -> list[str]:
        return [display_address(sock, scheme) for sock in self.listeners]

    def limit_descriptors(self, available: int) -> None:
        """Keep what the queues and the inspector may hold below ``available`` descriptors."""
        self.descriptor_cap = max(16, available)
        self.pending_total_limit = min(self.pending_total_limit, self.descriptor_cap)
        # Slow headers may hold at most half of them; the queues need the rest.
        self.inspector.total_limit = min(self.inspector.total_limit, max(16, available // 2))

    # ------------------------------------------------------------------------------ accepting

    def start_accepting(self) -> None:
        if self.closed or self.listening:
            return
        for sock in self.listeners:
            self.reactor.watch(sock, self._on_listener)
        self.listening = True

    def stop_accepting(self) -> None:
        for sock in self.listeners:
            self.reactor.unwatch(sock)
        self.listening = False

    def _resume_accepting(self) -> None:
        if not self.closed:
            log.info("accepting again")
            self.start_accepting()

    def _on_listener(self, sock: socket.socket, mask: int) -> None:
        for _ in range(ACCEPT_BURST):
            try:
                conn, address = sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("cannot accept: %s; pausing for %ss", exc.strerror, EMFILE_PAUSE)
                    self.stop_accepting()
                    self.reactor.call_later("resume accepting", EMFILE_PAUSE,
                                            self._resume_accepting)
                    return
                continue  # ECONNABORTED and friends: that client is gone already
            # A Unix peer has no address: the proxy in front names the client (inspector).
            peer = (address[0], address[1]) if isinstance(address, tuple) else UNIX_PEER
            if self.inspector.needed(peer):
                self._inspect(conn, peer)
            else:
                self.dispatch(conn, peer)

    # ----------------------------------------------------------------------------- inspecting

    def _inspect(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        inspection = self.inspector.start(conn, peer)
        self.reactor.watch(conn, self._on_inspect)
        if self.reactor.deadline("inspection timeout") is None:
            self._arm_inspection_deadline()
        self._inspected(inspection, self.inspector.step(inspection))

    def _on_inspect(self, conn: socket.socket, mask: int) -> None:
        inspection = self.inspector.pending.get(conn.fileno())
        if inspection is None:
            self.reactor.unwatch(conn)
            return
        outcome = self.inspector.step(inspection)
        if outcome is PARK:
            # Readable for good without more bytes (half-closed): only its deadline is left.
            self.reactor.unwatch(conn)
            return
        # WAIT leaves it watched: the inspector made it readable again only once more bytes
        # than it peeked at are in.
        self._inspected(inspection, outcome)

    def _inspected(self, inspection: Inspection, outcome: Outcome) -> None:
        """Dispatch an inspected connection, drop it, or let it wait (WAIT, PARK)."""
        if outcome is WAIT or outcome is PARK:
            return
        conn = inspection.conn
        self.inspector.finish(inspection)
        self.reactor.unwatch(conn)
        if outcome.address is not None:
            if outcome.address == UNIX_PEER and not self.warned_unnamed:
                self.warned_unnamed = True
                log.warning("a connection on a Unix socket named no client (no PROXY header, "
                            "no X-Forwarded-For / Forwarded / X-Real-IP): such connections all "
                            "go to slot 0; have the proxy send the client's address")
            self.dispatch(conn, outcome.address)
            return
        conn.close()
        now = time.monotonic()
        if now - self.last_inspect_log >= 1.0:
            self.last_inspect_log = now
            log.warning("closed a connection from %s: %s (%d bad, %d timed out, %d refused "
                        "so far)", inspection.peer[0] or "a Unix socket", outcome.error,
                        self.inspector.errors, self.inspector.timeouts, self.inspector.refused)

    def _arm_inspection_deadline(self) -> None:
        # The oldest inspection's deadline: they are kept in deadline order, nothing to scan.
        due = self.inspector.next_deadline()
        if due is not None:
            self.reactor.call_at("inspection timeout", due, self._check_inspections)

    def _check_inspections(self) -> None:
        # Only those past their deadline, from the front: one last look, then closed.
        for inspection in self.inspector.due(time.monotonic()):
            self._inspected(inspection, self.inspector.step(inspection))
        self._arm_inspection_deadline()

    # ------------------------------------------------------------------------------- handing

    def dispatch(self, conn: socket.socket, address: tuple[str, int]) -> None:
        """Queue ``conn`` (from client ``address``) in its slot and hand the queue over."""
        slot = self.slots[slot_for_address(address[0], self.routing)]
        total = sum(len(s.pending) for s in self.slots)
        if total < self.pending_total_limit and slot.pending.push(conn, address):
            self.flush(slot)
            return
        conn.close()
        slot.dropped += 1
        now = time.monotonic()
        if now - slot.last_drop_log >= 1.0:
            slot.last_drop_log = now
            log.warning(
                "slot %d: %d connection(s) waiting for its worker (the limit), closed the one "
                "from %s (%d closed so far)",
                slot.index,
                slot.pending.limit,
                address[0],
                slot.dropped,
            )

    def flush(self, slot: Slot) -> None:
        """Hand the slot's waiting connections to its worker until its channel is full."""
        worker = slot.worker
        if worker is None or worker.state != READY or worker.stalled_since is not None:
            return
        while slot.pending:
            conn, address = slot.pending.peek()
            message = channel.encode({"t": channel.CONN, "addr": list(address)})
            try:
                socket.send_fds(worker.channel, [message], [conn.fileno()])
            except BlockingIOError:
                # The worker is not reading (busy, stuck or stopped): wait for the channel to
                # drain instead of blocking the loop and every other slot.
                self.reactor.set_events(worker.channel,
                                        selectors.EVENT_READ | selectors.EVENT_WRITE)
                return
            except OSError as exc:
                if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                    # ETOOMANYREFS, ENOBUFS: passing conditions; try again shortly.
                    log.warning("slot %d: cannot hand a connection over: %s", slot.index, exc)
                    self.reactor.call_later(f"hand-off retry slot {slot.index}", HANDOFF_RETRY,
                                            lambda: self._retry(slot))
                return  # otherwise the worker is gone; its replacement gets the queue
            slot.pending.pop()
            conn.close()
            slot.handoffs += 1
        self.reactor.set_events(worker.channel, selectors.EVENT_READ)

    def _retry(self, slot: Slot) -> None:
        if not self.closed:
            self.flush(slot)

    def on_channel_writable(self, worker: WorkerProcess) -> None:
        """A worker's full channel has room again: hand it more, or stop watching for room."""
        slot = self.slot_of(worker)
        if slot is not None and worker is slot.worker:
            self.flush(slot)
        else:
            # Nothing more is handed to it; a channel left watched for writing would spin.
            self.reactor.set_events(worker.channel, selectors.EVENT_READ)

    def take_back(self, worker: WorkerProcess) -> None:
        """Put the connections a dead worker never read back at the head of its slot's queue,
        for the next worker (or close them when the cluster stops)."""
        if worker.worker_end is None:
            return
        unread = channel.take_back(worker.worker_end)
        if not unread:
            return
        slot = self.slot_of(worker)
        if slot is None and not self.closed:
            # Its slot was removed (scale down): each goes to the slot that serves it now.
            for conn, address in unread:
                self.dispatch(conn, address)
            log.info("worker pid %d of a removed slot left %d connection(s) unread; routed "
                     "them again", worker.pid, len(unread))
            return
        if slot is None or self.closed:
            for conn, _ in unread:
                conn.close()
            log.info("slot %d: closed %d connection(s) worker pid %d never read", worker.slot,
                     len(unread), worker.pid)
            return
        slot.pending.requeue(unread)
        slot.requeued += len(unread)
        log.warning("slot %d: took back %d connection(s) worker pid %d never read; they go to "
                    "the next worker", slot.index, len(unread), worker.pid)

    def slot_of(self, worker: WorkerProcess) -> Slot | None:
        """The slot ``worker`` was started for, or None if a scale-down removed it."""
        if worker.slot < len(self.slots):
            return self.slots[worker.slot]
        return None

    def set_pending_total(self, per_slot: int) -> None:
        """Bound the queues together by ``per_slot`` for each slot there is now (after a
        scale), never above the descriptor cap."""
        total = per_slot * len(self.slots)
        self.pending_total_limit = min(total, self.descriptor_cap or total)

    def resize(self, routing: int) -> None:
        """Hash clients over the first ``routing`` slots from now on; what waits in the queue
        of a slot past them (being removed) is routed again, to the slot that serves it now."""
        self.routing = routing
        for slot in self.slots[routing:]:
            while slot.pending:
                conn, address = slot.pending.pop()
                self.dispatch(conn, address)

    # ------------------------------------------------------------------------------ stopping

    def close(self) -> None:
        """Stop for good: close the listeners and every waiting connection (logged per slot)."""
        self.closed = True
        self.stop_accepting()
        for sock in self.listeners:
            close_listener(sock, self.socket_files.get(sock.fileno()))
        self.listeners = []
        self.reactor.cancel("resume accepting")
        for slot in self.slots:
            closed = slot.pending.close_all()
            if closed:
                log.info("slot %d: closed %d waiting connection(s)", slot.index, closed)

    def release(self) -> None:
        """Close whatever is still held, silently (the master is exiting)."""
        for slot in self.slots:
            slot.pending.close_all()
        for inspection in list(self.inspector.pending.values()):
            inspection.conn.close()
        self.inspector.pending.clear()
        for sock in self.listeners:
            close_listener(sock, self.socket_files.get(sock.fileno()))
        self.listeners = []
