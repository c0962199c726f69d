"""What a worker's memory holds, on demand, and giving freed heap back to the system.

``figures()`` counts the per-session structures of the server (python-engineio's sessions,
python-socketio's rooms, our own records), the process's resident memory and what the C heap
and Python's allocator hold. ``log_figures_on_signal`` logs them as one JSON line whenever
the worker gets SIGUSR2 (with object counts per type and, when tracemalloc traces, its top
lines and growth since the last dump): a way to look into a live worker that costs nothing
until it is asked.

``HeapTrimmer`` answers what the mass-disconnect investigation found (docs/design.md,
"Memory after mass disconnects"): the sessions' memory is freed, but glibc keeps the freed
heap mapped; after a large drop in sessions it calls ``malloc_trim(0)``.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import json
import logging
import os
import signal
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

# Object types listed in a dump: the most numerous ones.
TOP_TYPES = 25
# Types of which every open session or connection has one: always counted in a dump. On
# eventlet: the engine.io sessions, eventlet's per-connection handler and websocket, green
# sockets; on asyncio: the async shells' sessions, uvicorn's HTTP and websocket protocols and
# the loop's transports (uvloop's or asyncio's).
SESSION_TYPES = ("ConformantSocket", "Eio3Session", "TimedProtocol", "HttpProtocol",
                 "RFC6455WebSocket", "GreenSocket", "Input", "_BoundedInput",
                 "AsyncConformantSocket", "AsyncEio3Session", "SessionQueue", "HttpToolsProtocol",
                 "H11Protocol", "WebSocketsSansIOProtocol", "WebSocketProtocol",
                 "TCPTransport", "_SelectorSocketTransport", "SSLProtocol")
TOP_TRACES = 15
# A folder: each dump under tracemalloc also writes its whole snapshot there.
SNAPSHOT_ENV = "SIOCTL_TRACEMALLOC_SNAPSHOTS"


def rss_kib() -> int:
    """This process's resident set size in KiB (0 when /proc says nothing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _libc() -> Any:
    """The C library when it is glibc (it has malloc_trim), else None. The process's own
    symbols: no library search (ctypes.util.find_library would run ldconfig)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def rss_by_mapping() -> dict[str, int]:
    """Resident KiB by kind of mapping (/proc/self/smaps): ``brk heap`` (glibc's main arena),
    ``anonymous`` (pymalloc's arenas, glibc's mmapped blocks, thread stacks), ``files`` (code
    and libraries), ``other``."""
    split: dict[str, int] = collections.Counter()
    kind = "other"
    try:
        with open("/proc/self/smaps", encoding="ascii", errors="replace") as smaps:
            for line in smaps:
                fields = line.split()
                if not fields:
                    continue
                if "-" in fields[0] and not fields[0].endswith(":"):
                    path = fields[5] if len(fields) > 5 else ""
                    kind = ("brk heap" if path == "[heap]" else "files" if path.startswith("/")
                            else "anonymous" if not path else "other")
                elif fields[0] == "Rss:":
                    split[kind] += int(fields[1])
    except (OSError, ValueError):
        return {}
    return dict(split)


def heap_kib() -> dict[str, int]:
    """glibc's heap in KiB: ``mapped`` (its arenas and mmapped blocks), ``in_use`` and ``free``
    (held by malloc, not given back); empty when the C library is not glibc 2.33+."""
    if _LIBC is None or not hasattr(_LIBC, "mallinfo2"):
        return {}
    _LIBC.mallinfo2.restype = _MallInfo2
    info = _LIBC.mallinfo2()
    return {
        "mapped": (info.arena + info.hblkhd) // 1024,
        "in_use": (info.uordblks + info.hblkhd) // 1024,
        "free": info.fordblks // 1024,
    }


def malloc_trim() -> bool:
    """Give glibc's free heap pages back to the system; False when there is no glibc."""
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True


def pymalloc_arenas() -> dict[str, int]:
    """pymalloc's arena figures (``sys._debugmallocstats``, which writes to the C stderr: it
    is read back through a temporary file): ``arenas`` held now (1 MiB each), ``used_bytes``
    and ``free_bytes`` in their blocks; empty when pymalloc is not the allocator
    (``PYTHONMALLOC``, tracemalloc) or the output cannot be read."""
    import tempfile

    wanted = {"# arenas allocated current": "arenas", "# bytes in allocated blocks": "used_bytes",
              "# bytes in available blocks": "free_bytes"}
    found: dict[str, int] = {}
    try:
        with tempfile.TemporaryFile(mode="w+") as out:
            sys.stderr.flush()
            saved = os.dup(2)
            try:
                os.dup2(out.fileno(), 2)
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            out.seek(0)
            for line in out:
                name, _, value = line.partition("=")
                key = wanted.get(name.strip())
                if key:
                    found[key] = int(value.strip().replace(",", ""))
    except (OSError, ValueError):
        return {}
    return found


def _size(obj: Any, *names: str) -> int | None:
    """len() of the attribute path ``names`` of ``obj``, or None when it is not there."""
    for name in names:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    try:
        return len(obj)
    except TypeError:
        return None


def structures(server: Any, http: Any = None) -> dict[str, int]:
    """Sizes of everything that holds an entry per session or connection (the names are the
    attribute paths; absent structures are left out)."""
    eio = getattr(server, "eio", server)  # an Engine.IO-only app's server is the engine
    manager = getattr(server, "manager", None)
    rooms = list(getattr(manager, "rooms", {}).values())
    sizes: dict[str, int | None] = {
        "eio.sockets": _size(eio, "sockets"),
        "eio.sockets open": sum(1 for s in list(eio.sockets.values()) if not s.closed),
        "sio.environ": _size(server, "environ"),
        "sio._binary_packet": _size(server, "_binary_packet"),
        "manager.eio_to_sid": _size(manager, "eio_to_sid"),
        "manager.callbacks": _size(manager, "callbacks"),
        "manager rooms": sum(len(namespace) for namespace in rooms),
        "manager room members": sum(
            len(members) for namespace in rooms for members in list(namespace.values())),
        "manager.pending_disconnect": sum(
            len(v) for v in getattr(manager, "pending_disconnect", {}).values()),
        "manager.owners": _size(manager, "owners"),
        "protocol.connected": _size(server, "_sioctl_state", "connected"),
        "protocol.awaiting": _size(server, "_sioctl_state", "awaiting"),
        "framework.claims": _size(server, "claims", "claimed"),
        "http._open": _size(http, "_open") if http is not None else None,
        "http queue": http.connections.qsize() if http is not None else None,
    }
    for name, handler in getattr(server, "namespace_handlers", {}).items():
        sizes[f"namespace {name} connections"] = _size(handler, "connections")
        gateway = next((getattr(plugin, "gateway", None) for plugin in
                        getattr(handler, "plugins", ()) if hasattr(plugin, "gateway")), None)
        if gateway is not None:
            sizes["gateway.clients"] = _size(gateway, "clients")
            for attr in ("_clients", "_users", "_nonces"):
                sizes[f"gateway.registry.{attr}"] = _size(gateway, "registry", attr)
    if eio.async_mode == "eventlet":
        from eventlet.hubs import get_hub  # not at import: this module must not load eventlet

        hub = get_hub()
        sizes["hub timers"] = len(hub.timers) + len(hub.next_timers)
    return {name: size for name, size in sizes.items() if size is not None}


def object_counts() -> collections.Counter[type]:
    """Live objects tracked by the garbage collector, per type."""
    return collections.Counter(type(obj) for obj in gc.get_objects())


def by_name(counts: collections.Counter[type]) -> collections.Counter[str]:
    """``counts`` per type name."""
    named: collections.Counter[str] = collections.Counter()
    for kind, count in counts.items():
        named[kind.__name__] += count
    return named


def session_object_counts(counts: collections.Counter[type]) -> dict[str, int]:
    """Of ``counts``, those of each name in :data:`SESSION_TYPES`, a subclass counted under the
    nearest of them in its MRO: the worker serves with subclasses of the libraries' classes
    (uvicorn's protocols made lean, python-engineio's socket made conformant), whose own names
    would otherwise hide them."""
    sessions = dict.fromkeys(SESSION_TYPES, 0)
    for kind, count in counts.items():
        for base in kind.__mro__:
            if base.__name__ in sessions:
                sessions[base.__name__] += count
                break
    return sessions


def figures(server: Any, http: Any = None, objects: bool = False) -> dict[str, Any]:
    """The worker's memory figures: RSS, heap, allocator, structures; with ``objects`` also
    pymalloc's arenas and the most numerous object types (walks every object: tens of ms
    per 10k sessions)."""
    result: dict[str, Any] = {
        "rss_kib": rss_kib(),
        "heap_kib": heap_kib(),
        "rss_split_kib": rss_by_mapping(),
        "pymalloc_blocks": sys.getallocatedblocks(),
        "structures": structures(server, http),
    }
    if objects:
        result["pymalloc"] = pymalloc_arenas()
        counts = object_counts()
        result["objects"] = sum(counts.values())
        result["types"] = dict(by_name(counts).most_common(TOP_TYPES))
        result["session_objects"] = session_object_counts(counts)
        result["gc_count"] = list(gc.get_count())
    return result


def traced(previous: tracemalloc.Snapshot | None = None) -> tuple[dict[str, Any],
                                                                 tracemalloc.Snapshot | None]:
    """When tracemalloc traces (``PYTHONTRACEMALLOC``): its totals, the lines that hold the
    most and, given the ``previous`` snapshot, the lines that grew most since; and the new
    snapshot. ``({}, None)`` when it does not trace."""
    if not tracemalloc.is_tracing():
        return {}, None
    current, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()

    def line(stat: Any) -> str:
        frame = stat.traceback[0]
        grown = f" ({stat.size_diff // 1024:+d} KiB)" if hasattr(stat, "size_diff") else ""
        return f"{frame.filename}:{frame.lineno} {stat.size // 1024} KiB{grown} in {stat.count}"

    folder = os.environ.get(SNAPSHOT_ENV)
    if folder:  # kept whole, for grouping by traceback (tests/bench/memory_breakdown.py)
        snapshot.dump(os.path.join(folder, f"snapshot-{os.getpid()}-{time.monotonic_ns()}"))
    result: dict[str, Any] = {
        "tracemalloc_kib": {"current": current // 1024, "peak": peak // 1024},
        "tracemalloc_top": [line(stat) for stat in snapshot.statistics("lineno")[:TOP_TRACES]],
    }
    if previous is not None:
        result["tracemalloc_growth"] = [
            line(stat) for stat in snapshot.compare_to(previous, "lineno")[:TOP_TRACES]]
        # Which library (or our own module) the growth belongs to: per file, the largest.
        result["tracemalloc_growth_by_file"] = [
            f"{stat.traceback[0].filename} {stat.size_diff // 1024:+d} KiB "
            f"({stat.count_diff:+d} blocks)"
            for stat in snapshot.compare_to(previous, "filename")[:TOP_TRACES]]
    return result, snapshot


def log_figures_on_signal(
    server: Any, http: Any, logger: logging.Logger, signum: int = signal.SIGUSR2
) -> None:
    """From now on, ``signum`` makes the worker log ``memory {json of figures(...)}`` once.

    The handler only writes to a pipe (worker/signal_pipe.py); a green thread does the
    counting.
    """
    import eventlet

    from sioctl.worker.signal_pipe import signal_pipe, wait_for_signal

    read_fd = signal_pipe(signum)

    def dump_on_request() -> None:
        snapshot = None  # tracemalloc's at the last dump
        while True:
            wait_for_signal(read_fd)
            try:
                started = time.perf_counter()
                result = figures(server, http, objects=True)
                tracing, snapshot = traced(snapshot)
                result.update(tracing)
                result["dump_ms"] = round((time.perf_counter() - started) * 1000)
                logger.warning("memory %s", json.dumps(result))
            except Exception:
                logger.exception("memory figures failed")

    eventlet.spawn(dump_on_request)


TRIM_ENV = "SIOCTL_MALLOC_TRIM"
TRIM_MINIMUM = 1000


def trim_minimum() -> int:
    """The drop in sessions after which the worker trims its heap: ``SIOCTL_MALLOC_TRIM``
    (default 1000; 0 turns trimming off, for measuring what it gives), 0 too when the C
    library is not glibc."""
    if _LIBC is None:
        return 0
    try:
        return max(0, int(os.environ.get(TRIM_ENV, TRIM_MINIMUM)))
    except ValueError:
        return TRIM_MINIMUM


class HeapTrimmer:
    """Calls ``malloc_trim(0)`` once the open sessions have dropped by a large share.

    ``check(sessions)`` is called with the open session count (the heartbeat does, once a
    second). When the count has fallen to at most ``1 - drop`` of its peak since the last trim,
    by at least ``minimum`` sessions, and has stopped falling (it moved by less than a tenth of
    ``minimum`` since the last check: the closing is over and its memory freed), the heap is
    trimmed and the figures logged: at most once per ``interval`` seconds, since a trim walks
    the whole heap.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        drop: float = 0.5,
        minimum: int = TRIM_MINIMUM,
        interval: float = 10.0,
        trim: Callable[[], bool] = malloc_trim,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.drop = drop
        self.minimum = minimum
        self.interval = interval
        self._trim = trim
        self._clock = clock
        self._peak = 0
        self._previous = 0
        self._last: float | None = None
        self.trims = 0

    def check(self, sessions: int) -> bool:
        """Note the session count; returns True when it trimmed the heap now."""
        previous, self._previous = self._previous, sessions
        self._peak = max(self._peak, sessions)
        if self._peak - sessions < self.minimum or sessions > self._peak * (1 - self.drop):
            return False
        if previous - sessions >= self.minimum / 10:
            return False  # still falling: trim once the closing is over
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        peak, self._peak, self._last = self._peak, sessions, now
        before = rss_kib()
        started = time.perf_counter()
        trimmed = self._trim()
        self.trims += 1
        if self.logger is not None:
            self.logger.info(
                "sessions fell from %d to %d: heap trimmed in %.0f ms, RSS %d -> %d MiB",
                peak, sessions, (time.perf_counter() - started) * 1000, before // 1024,
                rss_kib() // 1024)
        return trimmed
