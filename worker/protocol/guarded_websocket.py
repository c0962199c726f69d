"""The websocket an eventlet Engine.IO session reads and writes through: every incoming frame
checked by the session's rules as it arrives, whole simple frames taken straight off the
buffered reads, and shared frames written straight to the socket (:class:`.shared_writes.
DirectWrites`). Made by ``engineio_rules.ConformantSocket._websocket_handler``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import ws_reads
from .shared_writes import DirectWrites

if TYPE_CHECKING:
    from .engineio_rules import ConformantSocket


class GuardedWebSocket(DirectWrites):
    """The websocket python-engineio reads, with each frame validated as it arrives.

    An invalid frame raises :class:`InvalidPacket` from ``wait()``. In python-engineio's read
    loop that ends the loop and closes the session; during an upgrade it reaches
    ``engineio_rules.ConformantSocket._websocket_handler``.
    """

    def __init__(self, ws: Any, session: ConformantSocket, messages: Any = None) -> None:
        self._ws = ws
        self._session = session
        self._after_binary = False
        # messages(ws) reads the next message as ws.wait() does (websocket_serve.
        # eventlet_message_reader: without a generator under an idle reader), else None.
        self._messages = messages
        self._direct_init(ws)
        # The buffered reads (eventlet, plain socket, RFC 6455, no extension) whose whole
        # simple frames are read without eventlet's frame reader (ws_reads.take_frame).
        sock = getattr(ws, "socket", None)
        self._reads: Any = sock if isinstance(sock, ws_reads.BufferedReads) \
            and sock.raw is not None and getattr(ws, "version", None) in (8, 13) \
            and not getattr(ws, "extensions", None) and not getattr(ws, "client", True) \
            else None
        self._max_frame = min(int(getattr(ws, "max_frame_length", 0)), 64 * 1024)

    def _next_frame(self) -> Any:
        """The next message off the websocket (None at its end), as ``ws.wait()`` gives it:
        a whole simple frame straight off the read buffer, else eventlet's reader (through
        ``messages``, without its generator, when the reader is at a shallow stack)."""
        reads = self._reads
        if reads is not None:
            try:
                frame = reads.take_frame(self._max_frame)
            except Exception:
                # What eventlet's frame reader does when a read fails under it.
                self._ws.close(close_data=(1011, "Internal Server Error"))
                raise
            if frame is not ws_reads.NOT_SIMPLE:
                return frame
        messages = self._messages
        return self._ws.wait() if messages is None else messages(self._ws)

    def wait(self) -> Any:
        session = self._session
        if self._after_binary:
            # Each message's handler runs in a green thread of its own (async_handlers), and
            # the read loop yields only when the socket has nothing more to read: a client
            # faster than the worker had every attachment in the kernel's buffers read, and
            # held by a handler each, before the first handler counted one against
            # max_http_buffer_size (how much depended on scheduling). One switch per binary
            # frame lets the handlers of the frames read so far run, and refuse, first.
            self._after_binary = False
            session.server.sleep(0)
        if session.closed:
            return None  # a handler closed the session: read nothing more of it
        if not session.upgrading:
            # python-engineio reads the next frame once the upgrade packet has upgraded the
            # session: the upgrade has ended.
            session.upgrade_settled()
        frame = self._next_frame()
        if frame is None:
            return None
        self._after_binary = not isinstance(frame, str)
        return session.checked_websocket_frame(frame)

    def read_to_end(self) -> None:
        """Read the websocket to its end (in the green thread the HTTP server started for it:
        ``ConformantSocket._read_websocket``)."""
        self._session._read_websocket(self._ws, self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

