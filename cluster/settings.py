"""The settings a cluster runs with, shared by the master and its workers.

Each setting is declared once, as a field of :class:`Settings` carrying its spec
(:class:`.setting_spec.Spec`): the default, the bounds and checks, the command-line flag (whose
``SIOCTL_*`` variable follows from it), the gunicorn config key and the help text. :data:`TABLE`
lists the specs; the CLI builds its click options (cli/options.py) and resolves and checks
values (cli/config.py) from them, so nothing here imports click and the master can import this
module. The master hands the resolved Settings to each worker as JSON in the
``SIOCTL_SETTINGS`` environment variable.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import urllib.parse
from dataclasses import dataclass
from typing import Any

from .redis_urls import check_url
from .setting_spec import Spec, setting, specs_of

DEFAULT_PORT = 7001
DEFAULT_BIND = f"0.0.0.0:{DEFAULT_PORT}"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
REDIS_TRANSPORTS = ("pubsub", "streams")
# The worker engines (-k): "auto" follows the app (a socketio.AsyncServer or an ASGI app runs on
# asyncio, a socketio.Server on eventlet); the master resolves it before starting workers.
AUTO = "auto"
ASYNCIO = "asyncio"
EVENTLET = "eventlet"
WORKER_CLASSES = (AUTO, ASYNCIO, EVENTLET)
# gunicorn worker classes read as an engine from a config file's worker_class.
GUNICORN_WORKER_CLASSES = {
    "uvicorn.workers.UvicornWorker": ASYNCIO,
    "uvicorn.workers.UvicornH11Worker": ASYNCIO,
    "uvicorn_worker.UvicornWorker": ASYNCIO,
    "uvicorn_worker.UvicornH11Worker": ASYNCIO,
    "eventlet": EVENTLET,
    "gunicorn.workers.geventlet.EventletWorker": EVENTLET,
}
SETTINGS_ENV = "SIOCTL_SETTINGS"
SLOT_ENV = "SIOCTL_WORKER_SLOT"

# Exit status of a worker that could not load the app or reach its Redis. The master does not
# respawn such a worker during boot: it reports the message and stops (gunicorn does the same).
WORKER_BOOT_ERROR = 3
# From a day up, a timeout or graceful_timeout in seconds is taken for milliseconds (an hour of
# draining is a real choice; 30000 meant as 30 s is 8 hours and slips through).
DAY = 86_400

UNIX_PREFIX = "unix:"
# sockaddr_un's sun_path holds 108 bytes with the terminating NUL.
UNIX_PATH_MAX = 107


def unix_path(bind: str) -> str | None:
    """The path of a ``unix:PATH`` bind (gunicorn's form), None for HOST:PORT."""
    text = bind.strip()
    return text[len(UNIX_PREFIX):] if text.startswith(UNIX_PREFIX) else None


def parse_bind(bind: str) -> tuple[str, int]:
    """Split ``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` or ``PORT`` into (host, port).

    Raises ValueError with a message naming the bad value.
    """
    text = bind.strip()
    if text.startswith(UNIX_PREFIX):
        raise ValueError(f"bind {bind!r}: a Unix socket is not supported here")
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
        # ``password``, and a Sentinel URL's ``sentinel_password``.
        if any(key.lower().endswith("password") for key, _ in pairs):
            query = urllib.parse.urlencode(
                [(k, MASK if k.lower().endswith("password") else v) for k, v in pairs],
                safe="*/")
    if not netloc and "://" in url:
        # urlunsplit drops the empty authority of ``unix:///path``; keep the url's shape.
        text = f"{parts.scheme}://{parts.path}"
        text += f"?{query}" if query else ""
        return text + (f"#{parts.fragment}" if parts.fragment else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def worker_class_from_gunicorn(value: object) -> str:
    """The engine a gunicorn ``worker_class`` names (a uvicorn worker is asyncio); any other
    value is kept as it is, so the choices check names it."""
    name = value if isinstance(value, str) else getattr(value, "__module__", "") + "." + getattr(
        value, "__qualname__", "")
    return GUNICORN_WORKER_CLASSES.get(name, name)


def check_bind(bind: str) -> str | None:
    """None if ``bind`` is a usable HOST:PORT or ``unix:PATH``, else why not (one line)."""
    path = unix_path(bind)
    if path is not None:
        if not path:
            return f"bind {bind!r}: give the socket's path, unix:/run/app.sock"
        if len(os.fsencode(path)) > UNIX_PATH_MAX:
            return f"bind {bind!r}: a Unix socket path holds at most {UNIX_PATH_MAX} bytes"
        return None
    return check_tcp_bind(bind)


def check_tcp_bind(bind: str) -> str | None:
    """None if ``bind`` is a usable HOST:PORT, else why not (one line)."""
    try:
        parse_bind(bind)
    except ValueError as exc:
        return str(exc)
    return None


def check_raw_env(entry: str) -> str | None:
    """None if ``entry`` is KEY=VALUE (gunicorn's raw_env), else why not (one line)."""
    key, sep, _value = entry.partition("=")
    if not sep or not key.strip():
        return f"{entry!r} is not KEY=VALUE"
    return None


def check_network(entry: str) -> str | None:
    """None if ``entry`` is an address, a network or ``*``, else why not (one line)."""
    try:
        if entry != "*":
            ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return f"{entry!r} is not an address, a network or '*'"
    return None


def check_redis_url(url: str) -> str | None:
    """None if ``url`` is a Redis URL sioctl can use (cluster/redis_urls.py), else why not
    (one line, password masked)."""
    reason = check_url(url)
    return None if reason is None else f"{mask_url(url)!r} {reason}"


@dataclass
class Settings:
    """Everything the master and the workers need to know, JSON-serialisable.

    The fields are the settings table; :data:`TABLE` lists their specs in this order.
    """

    app: str = setting(
        env_name="SIOCTL_APP", gunicorn="wsgi_app",
        no_flag="given as the APP argument (module:attr or an app directory)",
    )
    binds: list[str] = setting(
        [DEFAULT_BIND], flags=("-b", "--bind"), multiple=True, metavar="HOST:PORT",
        check=check_bind, gunicorn="bind",
        help="Address to listen on (or unix:PATH, a Unix socket for a proxy on this machine); "
        "repeatable. Default {default}. "
        "{env} may hold several, separated by spaces or commas.",
    )
    # "auto" until the master resolves it (cluster/engine_probe.py); workers get the engine.
    worker_class: str = setting(
        AUTO, flags=("-k", "--worker-class"), choices=WORKER_CLASSES, ignore_case=True,
        gunicorn="worker_class", from_gunicorn=worker_class_from_gunicorn,
        help="Worker engine: asyncio (socketio.AsyncServer, ASGI apps: FastAPI, Starlette...), "
        "eventlet (socketio.Server), or {default} (default): the one the app needs. A config "
        "file's uvicorn.workers.UvicornWorker means asyncio.",
    )
    # The command line's default is the number of CPUs.
    workers: int = setting(
        1, flags=("-w", "--workers"), minimum=1, gunicorn="workers",
        help="Number of worker processes (default: the number of CPUs).",
    )
    # None: in-memory manager with one worker, an embedded redis-server with more.
    redis_url: str | None = setting(
        None, flags=("--redis",), metavar="URL", check=check_redis_url,
        help="Redis joining the workers (redis://, rediss://, valkey://, valkeys://, unix://, "
        "redis+sentinel://H:P,H:P/DB/SERVICE, redis+cluster://H:P,H:P). Default: an embedded "
        "redis-server with several workers, in-memory with one.",
    )
    redis_channel: str = setting(
        "socketio", flags=("--redis-channel",), metavar="NAME",
        help="Redis pub/sub channel of the socketio manager (default {default}).",
    )
    # "pubsub", or "streams" for the no-loss transport (worker/messaging/streams.py).
    redis_transport: str = setting(
        "pubsub", flags=("--redis-transport",), choices=REDIS_TRANSPORTS,
        help="{default} (default), or streams: a worker that loses Redis for a while receives "
        "what was published meanwhile, in order, exactly once.",
    )
    redis_stream_maxlen: int = setting(
        10_000, flags=("--redis-stream-maxlen",), metavar="N", minimum=100,
        help="Entries each stream keeps (streams transport; default {default}).",
    )
    # The command line's default is sioctl-PORT (the first bind's port).
    title: str = setting(
        "sioctl", flags=("--title",),
        help="Cluster name, for stop/status and the run directory (default {default}-PORT).",
    )
    # The flag gives the base; the cluster's own directory is BASE/TITLE.
    run_dir: str = setting(
        "", flags=("--run-dir",), metavar="DIR",
        help="Base of the run directories (default $XDG_RUNTIME_DIR/sioctl or ~/.sioctl/run); "
        "each cluster uses DIR/TITLE.",
    )
    env: str | None = setting(
        None, flags=("--env",), metavar="ENV",
        help="Environment name, exported to the app as SIOCTL_ENV; an app directory reads "
        "config/config_ENV.py (default prod there).",
    )
    # "": the command line's default, the app directory or else the current directory.
    chdir: str = setting(
        "", flags=("--chdir",), metavar="DIR", gunicorn="chdir",
        help="Working directory of the workers, where module:attr apps are imported from "
        "(default: the app directory, else the current directory).",
    )
    # Seconds without a heartbeat after which the master kills a worker (gunicorn's timeout).
    timeout: float = setting(
        30.0, flags=("-t", "--timeout"), metavar="S", minimum=0, seconds=True, millis_from=DAY,
        gunicorn="timeout",
        help="Kill a worker silent for this long (default {default}).",
    )
    graceful_timeout: float = setting(
        30.0, flags=("--graceful-timeout",), metavar="S", minimum=0, seconds=True,
        millis_from=DAY, gunicorn="graceful_timeout",
        help="Time workers get to finish on stop (default {default}).",
    )
    # Seconds a new Engine.IO session has to send its first Socket.IO CONNECT (0: no limit).
    connect_timeout: float = setting(
        45.0, flags=("--connect-timeout",), metavar="S", minimum=0, seconds=True,
        help="Close a session that has not connected to a namespace after this long "
        "(default {default}, as the Node server; 0: never).",
    )
    # Connection state recovery (Node's connectionStateRecovery.maxDisconnectionDuration, in
    # seconds; 0: off, as in Node): worker/messaging/recovery.py.
    connection_state_recovery: float = setting(
        0.0, flags=("--connection-state-recovery",), metavar="SECONDS", minimum=0,
        seconds=True,
        help="Let a client that lost its connection come back within SECONDS as the same "
        "socket (id, rooms, data) and receive every event it missed, in order (Socket.IO "
        "connection state recovery; needs the Redis manager; default 0: off).",
    )
    # Serve Socket.IO v2 clients (Engine.IO protocol 3) beside v3/v4 ones (Node's allowEIO3).
    allow_eio3: bool = setting(
        False, flags=("--allow-eio3/--no-allow-eio3",),
        help="Also serve Socket.IO v2 clients (Engine.IO protocol 3), as the Node server's "
        "allowEIO3; default: the app directory's io.init.allow_eio3, else off.",
    )
    ws_per_message_deflate: bool = setting(  # off: as Node's socket.io (docs/design.md)
        False, flags=("--ws-per-message-deflate/--no-ws-per-message-deflate",),
        help="Compress websocket frames for clients offering permessage-deflate (default: "
        "io.init.per_message_deflate, else off, as Node's socket.io).")
    # Seconds an idle keep-alive connection waits for its next request (0: no keep-alive).
    keepalive: float = setting(
        2.0, flags=("--keepalive",), metavar="S", minimum=0, seconds=True, gunicorn="keepalive",
        help="Close an HTTP connection idle this long between two requests (default {default}; "
        "0: no keep-alive).",
    )
    # Seconds a new connection has to deliver its first complete request head (TLS handshake
    # included), and a later request on a kept-alive connection its head once it has begun
    # (0: no limit). See worker/connection.py.
    header_timeout: float = setting(
        10.0, flags=("--header-timeout",), metavar="S", minimum=0, seconds=True,
        help="Close a connection that has not sent a complete request head this long after it "
        "arrived (TLS handshake included), or after a later request began (default {default}; "
        "0: no limit).",
    )
    worker_connections: int = setting(
        1000, flags=("--worker-connections",), metavar="N", minimum=1,
        gunicorn="worker_connections",
        help="Most connections one worker serves at once (default {default}).",
    )
    backlog: int = setting(
        2048, flags=("--backlog",), metavar="N", minimum=1, gunicorn="backlog",
        help="Listen backlog (default {default}).",
    )
    # Connections held per slot while its worker is not ready or not reading.
    pending_limit: int = setting(
        1024, flags=("--pending-limit",), metavar="N", minimum=1,
        help="Connections the master holds per slot while its worker is not ready or not "
        "reading; past this they are closed and logged (default {default}).",
    )
    loglevel: str = setting(
        "info", flags=("--log-level",), choices=LOG_LEVELS, ignore_case=True,
        gunicorn="loglevel", help="Log level (default {default}).",
    )
    accesslog: str | None = setting(
        None, flags=("--access-logfile",), metavar="FILE", gunicorn="accesslog",
        help="Access log file, '-' for stdout (default: none).",
    )
    errorlog: str = setting(
        "-", flags=("--error-logfile",), metavar="FILE", gunicorn="errorlog",
        help="Error log file, '-' for stderr (default '{default}'; with --daemon, "
        "RUN_DIR/sioctl.log).",
    )
    access_log_format: str = setting(
        '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
        gunicorn="access_log_format", no_flag="config file only, as gunicorn's access log format",
    )
    limit_request_line: int = setting(
        4094, gunicorn="limit_request_line", no_flag="config file only, as gunicorn's limit",
    )
    limit_request_fields: int = setting(
        100, gunicorn="limit_request_fields", no_flag="config file only, as gunicorn's limit",
    )
    limit_request_field_size: int = setting(
        8190, gunicorn="limit_request_field_size", no_flag="config file only, as gunicorn's limit",
    )
    certfile: str | None = setting(
        None, flags=("--certfile",), metavar="FILE", gunicorn="certfile",
        help="TLS certificate (PEM); with --keyfile the workers serve https and wss.",
    )
    keyfile: str | None = setting(
        None, flags=("--keyfile",), metavar="FILE", gunicorn="keyfile",
        help="TLS private key (PEM).",
    )
    # Peers whose Forwarded / X-Forwarded-For / X-Real-IP headers name the client (empty: none).
    forwarded_allow_ips: list[str] = setting(
        [], flags=("--forwarded-allow-ips",), metavar="IPS", check=check_network,
        gunicorn="forwarded_allow_ips",
        help="Comma-separated addresses or networks (or '*') of proxies whose X-Forwarded-For "
        "/ Forwarded / X-Real-IP headers name the client: the rightmost address not listed "
        "here (default: none).",
    )
    # Every connection starts with a PROXY protocol (v1 or v2) header.
    # gunicorn holds a mode ("off", "v1", "v2", "auto"; True is "auto"); every mode but "off"
    # means a header on every connection, of either version.
    proxy_protocol: bool = setting(
        False, flags=("--proxy-protocol/--no-proxy-protocol",), gunicorn="proxy_protocol",
        from_gunicorn=lambda mode: mode != "off",
        help="Every connection starts with a PROXY protocol v1/v2 header (nginx stream "
        "proxy_protocol, HAProxy send-proxy): slots and REMOTE_ADDR use the client it names.",
    )
    pidfile: str | None = setting(
        None, flags=("-p", "--pidfile"), metavar="FILE", gunicorn="pidfile",
        help="Also write the master's pid here (it is always in RUN_DIR/master.pid).",
    )
    # What ps shows (cluster/proctitle.py); the command line's default is the title.
    proc_name: str | None = setting(
        None, flags=("-n", "--name"), metavar="NAME", gunicorn="proc_name",
        help="Process name: ps shows 'sioctl: master [NAME]' and 'sioctl: worker N [NAME]' "
        "(default: the title); also the default --title when it can be one.",
    )
    raw_env: list[str] = setting(
        [], flags=("-e", "--raw-env"), multiple=True, metavar="KEY=VALUE", check=check_raw_env,
        gunicorn="raw_env",
        help="Set KEY to VALUE in the workers' environment (gunicorn's -e); repeatable.",
    )
    # Whom the master and workers run as once the listeners are bound (None: as started).
    user: str | None = setting(
        None, flags=("-u", "--user"), metavar="USER", gunicorn="user", from_gunicorn=str,
        help="Switch to this user (name or uid) once the listeners are bound, to bind :80 or "
        ":443 as root and serve as USER.",
    )
    group: str | None = setting(
        None, flags=("-g", "--group"), metavar="GROUP", gunicorn="group", from_gunicorn=str,
        help="Switch to this group (name or gid) once the listeners are bound (default: "
        "USER's group).",
    )
    daemon: bool = setting(
        False, flags=("-D", "--daemon/--no-daemon"), gunicorn="daemon",
        help="Run in the background; returns once every worker serves.",
    )
    # HOST:PORT where the master serves Prometheus metrics; None: no metrics.
    metrics_bind: str | None = setting(
        None, flags=("--metrics-bind",), metavar="HOST:PORT", check=check_tcp_bind,
        help="Serve Prometheus metrics for the whole cluster at http://HOST:PORT/metrics.",
    )

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

    @property
    def scheme(self) -> str:
        """The scheme clients use: ``https`` when the workers terminate TLS."""
        return "https" if self.certfile else "http"


# The settings table, in the order of the Settings fields; SPECS finds a row by field name.
TABLE: tuple[Spec, ...] = specs_of(Settings)
SPECS: dict[str, Spec] = {spec.name: spec for spec in TABLE}


def default(name: str) -> Any:
    """The default of the setting ``name`` (the Settings field), e.g. 45.0 for connect_timeout."""
    return SPECS[name].default
