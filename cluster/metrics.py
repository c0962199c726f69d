"""Prometheus metrics for the whole cluster, served by the master on ``--metrics-bind``.

The master already knows every figure (its own counters, and what each worker reports in its
heartbeat), so one scrape of the master covers every worker. The page is rendered with
prometheus-client from the same status reply ``sioctl status`` shows; the socket is served
from the master's selector loop without blocking it.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .peers import Peer, PeerTable

# A scraper that connects and sends nothing is dropped after this long.
REQUEST_TIMEOUT = 5.0
MAX_HEAD = 8192

# (status key of a slot, metric name, help, counter?)
SLOT_FIGURES = [
    ("connections", "sioctl_worker_connections", "Open client connections of the worker", False),
    ("sessions", "sioctl_worker_sessions", "Engine.IO sessions of the worker", False),
    ("restarts", "sioctl_worker_restarts", "Times the slot's worker was respawned", True),
    ("handoffs", "sioctl_handoffs", "Connections handed to the slot's workers", True),
    ("requeued", "sioctl_requeued_connections", "Connections taken back unread from a dead "
     "worker's channel and handed to the next worker", True),
    ("pending", "sioctl_pending_connections", "Connections waiting for the slot's worker", False),
    ("dropped", "sioctl_dropped_connections", "Connections closed because the slot's queue was "
     "full", True),
    ("refused", "sioctl_refused_connections", "Connections the slot's worker answered 503 "
     "because all its --worker-connections were busy (since the worker started)", True),
    ("events_received", "sioctl_socketio_events_received", "Socket.IO events the slot's "
     "worker received from its clients (since the worker started)", True),
    ("emits", "sioctl_socketio_emits", "emit() calls of the slot's worker's Socket.IO server, "
     "send() and call() included (since the worker started)", True),
]
# (key of a worker's "messaging" figures, metric name, help, counter?)
REDIS_FIGURES = [
    ("queued", "sioctl_redis_publish_queue", "Messages waiting to be published", False),
    ("published", "sioctl_redis_published", "Commands sent to Redis", True),
    ("batches", "sioctl_redis_batches", "Pipelined batches sent to Redis", True),
    ("dropped", "sioctl_redis_dropped", "Messages dropped because the publish queue was full",
     True),
    ("delayed", "sioctl_redis_delayed", "Messages that waited out a Redis outage", True),
    ("lost", "sioctl_redis_lost", "Messages from other workers that never arrived (pub/sub "
     "gaps)", True),
    ("outages", "sioctl_redis_outages", "Redis outages seen by the publisher", True),
    ("resubscriptions", "sioctl_redis_resubscriptions", "Times the listener lost its "
     "subscription", True),
]

# (key of a worker's "messaging" -> "recovery" figures, metric name, help, counter?); only
# workers with --connection-state-recovery have them.
RECOVERY_FIGURES = [
    ("attempted", "sioctl_recovery_attempted", "Reconnections that asked to recover their "
     "session (connection state recovery)", True),
    ("recovered", "sioctl_recovery_succeeded", "Sessions recovered: same id, rooms and data, "
     "missed events replayed", True),
    ("expired", "sioctl_recovery_expired", "Recoveries refused: the session or the offset was "
     "gone (past the window, or trimmed), or the events could not be read", True),
    ("sessions", "sioctl_recovery_sessions", "Sockets with a recoverable session on the "
     "worker", False),
]


class StatusCollector:
    """A prometheus-client collector reading the master's status at each scrape."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        slots = status.get("slots", [])
        info = GaugeMetricFamily("sioctl_build_info", "sioctl's version (always 1)",
                                 labels=["version"])
        info.add_metric([str(status.get("version", ""))], 1)
        yield info
        yield from _processes(status)
        ready = GaugeMetricFamily("sioctl_workers_ready", "Slots whose worker is ready")
        ready.add_metric([], sum(1 for s in slots if s.get("state") == "ready"))
        yield ready
        yield from _per_slot(slots, SLOT_FIGURES, lambda s: s)
        subscribed = GaugeMetricFamily("sioctl_redis_subscribed",
                                       "1 when the worker's Redis listener is subscribed",
                                       labels=["slot"])
        for slot in slots:
            messaging = slot.get("messaging")
            if isinstance(messaging, dict):
                subscribed.add_metric([str(slot["slot"])], 1 if messaging.get("subscribed") else 0)
        yield subscribed
        yield from _per_slot(slots, REDIS_FIGURES, lambda s: s.get("messaging"))
        yield from _per_slot(slots, RECOVERY_FIGURES,
                             lambda s: (s.get("messaging") or {}).get("recovery"))
        yield _latency(slots)
        yield from _embedded_redis(status.get("embedded_redis"))
        yield from _topology(slots)
        inspection = status.get("inspection") or {}
        for key, name, help_text in (
            ("errors", "sioctl_client_address_errors", "Connections closed for a bad or missing "
             "PROXY header"),
            ("timeouts", "sioctl_client_address_timeouts", "Connections closed for sending no "
             "complete PROXY header or request head in time"),
            ("refused", "sioctl_client_address_refused", "Connections closed at once because "
             "their peer, or all peers, had too many connections waiting for a header"),
        ):
            counter = CounterMetricFamily(name, help_text)
            counter.add_metric([], inspection.get(key, 0))
            yield counter


def _processes(status: dict[str, Any]) -> Iterator[Metric]:
    """prometheus-client's process_* figures (CPU seconds, resident memory, open fds, start
    time...) of the master and of each slot's worker, read from /proc as its ProcessCollector
    reads its own process, labelled role="master" or role="worker" and the slot."""
    pids: list[tuple[int, list[str]]] = []
    if isinstance(status.get("pid"), int):
        pids.append((status["pid"], ["master", ""]))
    for slot in status.get("slots", []):
        if isinstance(slot.get("pid"), int):
            pids.append((slot["pid"], ["worker", str(slot["slot"])]))
    families: dict[str, Metric] = {}
    for pid, labels in pids:
        for found in ProcessCollector(pid=functools.partial(int, pid), registry=None).collect():
            family = families.get(found.name)
            if family is None:
                kind = CounterMetricFamily if found.type == "counter" else GaugeMetricFamily
                family = families[found.name] = kind(found.name, found.documentation,
                                                     labels=["role", "slot"])
            for sample in found.samples:
                if sample.name in (found.name, found.name + "_total"):
                    family.add_metric(labels, sample.value)  # type: ignore[attr-defined]
    yield from families.values()


def _embedded_redis(info: Any) -> Iterator[Metric]:
    """Whether the master's own redis-server serves, and how often it was restarted (nothing
    when the cluster uses another Redis, or none)."""
    if not isinstance(info, dict):
        return
    up = GaugeMetricFamily("sioctl_embedded_redis_up",
                           "1 when the embedded redis-server answers, 0 while it is down")
    up.add_metric([], 1 if info.get("state") == "up" else 0)
    yield up
    restarts = CounterMetricFamily("sioctl_embedded_redis_restarts",
                                   "Times the master started its embedded redis-server again")
    restarts.add_metric([], info.get("restarts", 0))
    yield restarts


def _topology(slots: list[dict[str, Any]]) -> Iterator[Metric]:
    """The Redis topology the workers report (the first that does): its kind, and on Sentinel
    or a cluster whether it answers, ``ok`` (cluster_state) and how many shards serve it."""
    for slot in slots:
        topology = (slot.get("messaging") or {}).get("topology")
        if not isinstance(topology, dict) or "kind" not in topology:
            continue
        kind = GaugeMetricFamily("sioctl_redis_topology", "The Redis topology in use (always 1)",
                                 labels=["kind", "master"])
        kind.add_metric([str(topology["kind"]), str(topology.get("master", ""))], 1)
        yield kind
        if topology["kind"] != "single":
            ok = GaugeMetricFamily("sioctl_redis_topology_ok", "1 when the Redis topology "
                                   "answers and (a cluster) reports cluster_state ok")
            ok.add_metric([], 1 if topology.get("state") == "ok" else 0)
            yield ok
        if topology["kind"] == "cluster":
            shards = GaugeMetricFamily("sioctl_redis_cluster_shards",
                                       "Masters serving the Redis Cluster's slots")
            shards.add_metric([], len(topology.get("shards") or []))
            yield shards
        return


def _latency(slots: list[dict[str, Any]]) -> Metric:
    family = HistogramMetricFamily(
        "sioctl_redis_delivery_seconds",
        "Time from another worker's publish to this worker's handling of a message",
        labels=["slot"],
    )
    for slot in slots:
        latency = (slot.get("messaging") or {}).get("latency")
        if isinstance(latency, dict) and isinstance(latency.get("buckets"), dict):
            buckets = [(bound, float(n)) for bound, n in latency["buckets"].items()]
            family.add_metric([str(slot["slot"])], buckets, float(latency.get("sum", 0.0)))
    return family


def _per_slot(
    slots: list[dict[str, Any]],
    figures: list[tuple[str, str, str, bool]],
    source: Callable[[dict[str, Any]], Any],
) -> Iterator[Metric]:
    for key, name, help_text, counter in figures:
        family: Metric = (CounterMetricFamily if counter else GaugeMetricFamily)(
            name, help_text, labels=["slot"])
        for slot in slots:
            values = source(slot)
            if isinstance(values, dict) and isinstance(values.get(key), (int, float)):
                family.add_metric([str(slot["slot"])], values[key])  # type: ignore[attr-defined]
        yield family


class _Scrape(Peer):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock, REQUEST_TIMEOUT)
        self.reply = b""


class MetricsServer:
    """Answers ``GET /metrics`` on its own listening socket, driven by the master's loop."""

    def __init__(self, listener: socket.socket, status: Callable[[], dict[str, Any]]) -> None:
        self.sock = listener
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatusCollector(status))
        self.scrapes: PeerTable[_Scrape] = PeerTable(listener, _Scrape)

    @property
    def url(self) -> str:
        """``http://HOST:PORT/metrics`` of the listening socket (its real port)."""
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"

    def accept(self) -> socket.socket | None:
        return self.scrapes.accept()

    def has_reply(self, conn: socket.socket) -> bool:
        scrape = self.scrapes.get(conn)
        return scrape is not None and bool(scrape.reply)

    def on_readable(self, conn: socket.socket) -> bool:
        """Read the request; True once a reply is ready to send (or the scraper is gone)."""
        scrape = self.scrapes.peers[conn.fileno()]
        try:
            chunk = conn.recv(4096)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            return True
        scrape.buffer += chunk
        if b"\r\n\r\n" not in scrape.buffer and len(scrape.buffer) < MAX_HEAD:
            return False
        scrape.reply = self._reply(scrape.buffer)
        return True

    def _reply(self, head: bytes) -> bytes:
        request_line = head.split(b"\r\n", 1)[0].split()
        if len(request_line) < 2 or request_line[0] != b"GET":
            return _http(405, b"use GET /metrics\n", b"text/plain")
        if request_line[1].split(b"?")[0] != b"/metrics":
            return _http(404, b"see /metrics\n", b"text/plain")
        return _http(200, generate_latest(self.registry), b"text/plain; version=0.0.4")

    def on_writable(self, conn: socket.socket) -> bool:
        """Send what is left of the reply; True when done."""
        scrape = self.scrapes.peers[conn.fileno()]
        try:
            sent = conn.send(scrape.reply)
        except BlockingIOError:
            return False
        except OSError:
            return True
        scrape.reply = scrape.reply[sent:]
        return not scrape.reply

    def expired(self) -> list[socket.socket]:
        return self.scrapes.expired()

    def forget(self, conn: socket.socket) -> None:
        self.scrapes.forget(conn)

    def close(self) -> None:
        self.scrapes.close()


def _http(status: int, body: bytes, content_type: bytes) -> bytes:
    reason = {200: b"OK", 404: b"Not Found", 405: b"Method Not Allowed"}[status]
    return (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (status, reason, content_type, len(body)) + body)
