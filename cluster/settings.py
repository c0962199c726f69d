"""The settings a cluster runs with, shared by the master and its workers.

The CLI builds a :class:`Settings` from its options, ``SIOCTL_*`` environment variables and
gunicorn's configuration model; the master hands it to each worker as JSON in the
``SIOCTL_SETTINGS`` environment variable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import urllib.parse
from dataclasses import dataclass, field

DEFAULT_PORT = 7001
SETTINGS_ENV = "SIOCTL_SETTINGS"
SLOT_ENV = "SIOCTL_WORKER_SLOT"

# Exit status of a worker that could not load the app or reach its Redis. The master does not
# respawn such a worker during boot: it reports the message and stops (gunicorn does the same).
WORKER_BOOT_ERROR = 3


@dataclass
class Settings:
    """Everything the master and the workers need to know, JSON-serialisable."""

    app: str
    binds: list[str] = field(default_factory=lambda: [f"127.0.0.1:{DEFAULT_PORT}"])
    workers: int = 1
    # None: in-memory manager with one worker, an embedded redis-server with more.
    redis_url: str | None = None
    redis_channel: str = "socketio"
    # "pubsub", or "streams" for the no-loss transport (worker/messaging/streams.py).
    redis_transport: str = "pubsub"
    redis_stream_maxlen: int = 10_000
    title: str = "sioctl"
    run_dir: str = ""
    env: str | None = None
    chdir: str = ""
    # Seconds without a heartbeat after which the master kills a worker (gunicorn's timeout).
    timeout: float = 30.0
    graceful_timeout: float = 30.0
    # Seconds a new Engine.IO session has to send its first Socket.IO CONNECT (0: no limit).
    connect_timeout: float = 45.0
    # Serve Socket.IO v2 clients (Engine.IO protocol 3) beside v3/v4 ones (Node's allowEIO3).
    allow_eio3: bool = False
    # Seconds an idle keep-alive connection waits for its next request (0: no keep-alive).
    keepalive: float = 2.0
    # Seconds a new connection has to deliver its first complete request head (TLS handshake
    # included), and a later request on a kept-alive connection its head once it has begun
    # (0: no limit). See worker/connection.py.
    header_timeout: float = 10.0
    worker_connections: int = 1000
    backlog: int = 2048
    # Connections held per slot while its worker is not ready or not reading.
    pending_limit: int = 1024
    loglevel: str = "info"
    accesslog: str | None = None
    errorlog: str = "-"
    access_log_format: str = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    limit_request_line: int = 4094
    limit_request_fields: int = 100
    limit_request_field_size: int = 8190
    certfile: str | None = None
    keyfile: str | None = None
    # Peers whose Forwarded / X-Forwarded-For / X-Real-IP headers name the client (empty: none).
    forwarded_allow_ips: list[str] = field(default_factory=list)
    # Every connection starts with a PROXY protocol (v1 or v2) header.
    proxy_protocol: bool = False
    pidfile: str | None = None
    proc_name: str | None = None
    raw_env: list[str] = field(default_factory=list)
    daemon: bool = False
    # HOST:PORT where the master serves Prometheus metrics; None: no metrics.
    metrics_bind: str | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_environ(cls) -> Settings:
        """The settings a worker was started with (raises KeyError outside a worker)."""
        return cls.from_json(os.environ[SETTINGS_ENV])

    @property
    def control_socket(self) -> str:
        return os.path.join(self.run_dir, "control.sock")

    @property
    def master_pidfile(self) -> str:
        return os.path.join(self.run_dir, "master.pid")


def parse_bind(bind: str) -> tuple[str, int]:
    """Split ``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` or ``PORT`` into (host, port).

    Raises ValueError with a message naming the bad value.
    """
    text = bind.strip()
    if text.startswith("unix:"):
        raise ValueError(f"bind {bind!r}: Unix socket binds are not supported")
    host = "0.0.0.0"
    port_text = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"bind {bind!r}: missing ']' after the IPv6 address")
        host = text[1:end]
        rest = text[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"bind {bind!r}: expected [ADDRESS]:PORT")
        port_text = rest[1:]
    elif ":" in text:
        host_part, _, port_text = text.rpartition(":")
        if ":" in host_part:
            raise ValueError(f"bind {bind!r}: write IPv6 addresses as [ADDRESS]:PORT")
        host = host_part or host
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bind {bind!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"bind {bind!r}: port {port} is out of range")
    return host, port



MASK = "***"


def mask_url(url: str) -> str:
    """``url`` with any password (in the user info or a ``password=`` query) replaced by ***.

    Fit for logs, status output and error messages; secrets never reach them.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostinfo}" if sep else f"{userinfo}@{hostinfo}"
        # ``redis://secret@host`` means password "secret" to redis-py when there is no colon.
        if not sep and user:
            netloc = f"{MASK}@{hostinfo}"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(key.lower() == "password" for key, _ in pairs):
            query = urllib.parse.urlencode(
                [(k, MASK if k.lower() == "password" else v) for k, v in pairs], safe="*/"
            )
    if not netloc and "://" in url:
        # urlunsplit drops the empty authority of ``unix:///path``; keep the url's shape.
        text = f"{parts.scheme}://{parts.path}"
        text += f"?{query}" if query else ""
        return text + (f"#{parts.fragment}" if parts.fragment else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
