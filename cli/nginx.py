"""nginx configurations for putting nginx in front of sioctl nodes.

Pure functions: each returns the text of a complete ``nginx.conf`` (run it with
``nginx -c FILE``); nothing here reads or writes files. Two kinds:

- :func:`http_config`: nginx proxies HTTP and websockets and tells the node who the client is in
  ``X-Forwarded-For``; the node must be started with ``--forwarded-allow-ips NGINX_ADDRESS``.
- :func:`stream_config`: nginx passes raw TCP and opens every connection to a node with a PROXY
  protocol header; the node must be started with ``--proxy-protocol``.

With several nodes, both pick the node with ``hash $remote_addr consistent``, so every request
of one client reaches one node, and the node's master then picks the worker.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

# python-socketio's defaults: a client is dropped after ping_interval + ping_timeout of silence,
# so an idle websocket or a pending long-poll can legitimately stay quiet for up to 45 s.
PING_INTERVAL = 25
PING_TIMEOUT = 20
# nginx's proxy timeouts must be above that, or nginx cuts healthy idle connections itself.
PROXY_TIMEOUT = 60

# Where Debian and Ubuntu keep the stream module (package libnginx-mod-stream); nginx.org's own
# packages build it in, and then no load_module line is needed.
DEBIAN_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

# Host names nginx accepts in a server line; IP addresses are checked by ipaddress.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
# server_name values: names, wildcards (*.example.com) and nginx's "_" catch-all.
_SERVER_NAME = re.compile(r"^[A-Za-z0-9_*.~-][A-Za-z0-9_*.-]*$")


class NginxConfigError(ValueError):
    """A node, port, name or path that cannot go into an nginx config; the message says which."""


@dataclass(frozen=True)
class Address:
    """A host and port: a sioctl node, or where nginx listens."""

    host: str
    port: int

    def __str__(self) -> str:
        if self.host.startswith("unix:"):
            return self.host  # a node's Unix socket (-b unix:PATH); port unused
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Tls:
    """nginx terminates TLS with this certificate chain and key (PEM files)."""

    certfile: str
    keyfile: str


@dataclass(frozen=True)
class LocalRun:
    """Run files of an nginx started without root (tests, trying it out): ``daemon off``, one
    worker, and the pid file, logs and temporary files all inside ``directory``."""

    directory: str


def parse_address(text: str, what: str = "node") -> Address:
    """``HOST:PORT``, ``[V6]:PORT`` or ``unix:/PATH`` (a node on this machine listening on a
    Unix socket) as an Address; raises NginxConfigError naming ``text``."""
    value = text.strip()
    if value.startswith("unix:"):
        if not value[5:].startswith("/"):
            raise NginxConfigError(f"{what} {text!r}: expected unix:/ABSOLUTE/PATH")
        return Address(value, 0)
    if value.startswith("["):
        host, sep, port_text = value[1:].partition("]:")
        if not sep:
            raise NginxConfigError(f"{what} {text!r}: expected [ADDRESS]:PORT")
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise NginxConfigError(f"{what} {text!r}: expected HOST:PORT")
        if ":" in host:
            raise NginxConfigError(f"{what} {text!r}: write IPv6 addresses as [ADDRESS]:PORT")
    _check_host(host, f"{what} {text!r}")
    return Address(host, _port(port_text, f"{what} {text!r}"))


def parse_listen(text: str) -> Address:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT`` for nginx's listen; a bare port listens on every
    IPv4 address (host ``*``)."""
    value = text.strip()
    if value.isdigit():
        return Address("*", _port(value, f"listen {text!r}"))
    return parse_address(value, "listen")


def default_listen(tls: Tls | None) -> Address:
    """Port 443 with TLS, 80 without, on every address."""
    return Address("*", 443 if tls else 80)


def http_config(
    nodes: Sequence[Address],
    *,
    listen: Address | None = None,
    server_name: str | None = None,
    tls: Tls | None = None,
    local: LocalRun | None = None,
) -> str:
    """A complete nginx.conf proxying HTTP and websockets to ``nodes``.

    One node: a plain proxy. Several: ``hash $remote_addr consistent`` picks the node. Raises
    NginxConfigError for an empty node list, a bad server name or an unusable path.
    """
    _check_nodes(nodes)
    listen = listen or default_listen(tls)
    name = _server_name(server_name)
    out: list[str] = []
    out += _header(nodes, "http", local, stream_module=None)
    out += [
        "http {",
        *_indent(_local_http(local)),
        "    # The Connection header to send upstream: 'upgrade' when the client asks to switch",
        "    # to websocket, 'close' otherwise (see the upstream's comment on keepalive).",
        "    map $http_upgrade $connection_upgrade {",
        "        default upgrade;",
        "        ''      close;",
        "    }",
        "",
        *_indent(_upstream(nodes, stream=False)),
        "",
        "    server {",
        *_indent(_listen_lines(listen, tls), 2),
        f"        server_name {name};",
    ]
    if tls:
        out += _indent(_tls_lines(tls), 2)
    out += [
        "",
        "        location / {",
        "            proxy_pass http://sioctl;",
        "            # websockets need HTTP/1.1 and the hop-by-hop Upgrade/Connection headers.",
        "            proxy_http_version 1.1;",
        "            proxy_set_header Upgrade $http_upgrade;",
        "            proxy_set_header Connection $connection_upgrade;",
        "            # The Host the client sent, port included: python-socketio compares it",
        "            # with the Origin of browsers and websocket clients ($host drops the port).",
        "            proxy_set_header Host $http_host;",
        "            # Set, not appended to: the node hashes the client address it finds here, so",
        "            # it must hold nginx's view of the client, not what the client wrote itself.",
        "            proxy_set_header X-Forwarded-For $remote_addr;",
        "            proxy_set_header X-Real-IP $remote_addr;",
        "            proxy_set_header X-Forwarded-Proto $scheme;",
        f"            # Above ping_interval + ping_timeout ({PING_INTERVAL} + {PING_TIMEOUT} s, "
        "python-socketio's",
        "            # defaults): an idle websocket or a pending long-poll is not a dead one.",
        f"            proxy_read_timeout {PROXY_TIMEOUT}s;",
        f"            proxy_send_timeout {PROXY_TIMEOUT}s;",
        "            # Long-polling answers and websocket frames go through at once.",
        "            proxy_buffering off;",
        "            proxy_request_buffering off;",
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(out) + "\n"


def stream_config(
    nodes: Sequence[Address],
    *,
    listen: Address | None = None,
    tls: Tls | None = None,
    stream_module: str | None = DEBIAN_STREAM_MODULE,
    local: LocalRun | None = None,
) -> str:
    """A complete nginx.conf passing TCP to ``nodes`` with a PROXY protocol header first.

    ``stream_module`` is the path of ngx_stream_module.so to load (None where nginx has the
    stream module built in: the load_module line is then left commented out). With several
    nodes ``hash $remote_addr consistent`` picks the node.
    """
    _check_nodes(nodes)
    listen = listen or default_listen(tls)
    out: list[str] = []
    out += _header(nodes, "stream", local, stream_module=stream_module)
    out += [
        "stream {",
        *_indent(_local_stream(local)),
        *_indent(_upstream(nodes, stream=True)),
        "",
        "    server {",
        *_indent(_listen_lines(listen, tls), 2),
    ]
    if tls:
        out += _indent(_tls_lines(tls), 2)
    out += [
        "        proxy_pass sioctl;",
        "        # Every connection to a node starts with a PROXY protocol v1 header naming the",
        "        # client: the node (sioctl start --proxy-protocol) hashes that address, and its",
        "        # workers see it as REMOTE_ADDR.",
        "        proxy_protocol on;",
        "        proxy_connect_timeout 5s;",
        f"        # Idle time allowed in both directions; above ping_interval + ping_timeout "
        f"({PING_INTERVAL} + {PING_TIMEOUT} s).",
        f"        proxy_timeout {PROXY_TIMEOUT}s;",
        "    }",
        "}",
    ]
    return "\n".join(out) + "\n"


def _header(
    nodes: Sequence[Address], kind: str, local: LocalRun | None, stream_module: str | None
) -> list[str]:
    node_args = " ".join(f"--node {node}" for node in nodes)
    flag = " --stream" if kind == "stream" else ""
    out = [
        f"# nginx in front of {_count(len(nodes), 'sioctl node')}, written by:",
        f"#   sioctl nginx {node_args}{flag}",
        "# Run it with: nginx -c /path/to/this/file (test it first with nginx -t -c ...).",
        "# Start each node with: " + (
            "sioctl start ... --proxy-protocol" if kind == "stream"
            else "sioctl start ... --forwarded-allow-ips NGINX_ADDRESS"
        ),
    ]
    if kind == "stream":
        out += [
            "# The stream module: package libnginx-mod-stream on Debian and Ubuntu; no",
            "# load_module where nginx has it built in (nginx -V: --with-stream, no =dynamic).",
        ]
        if stream_module:
            out.append(f'load_module "{_check_path(stream_module, "stream module")}";')
        else:
            out.append(f'# load_module "{DEBIAN_STREAM_MODULE}";')
    out.append("")
    if local:
        d = _check_path(local.directory, "run directory")
        out += [
            "daemon off;",
            "worker_processes 1;",
            f'pid "{d}/nginx.pid";',
            f'error_log "{d}/error.log" info;',
        ]
    else:
        out.append("worker_processes auto;")
    out += [
        "",
        "events {",
        "    # Every websocket holds two connections in nginx: the client's and the node's.",
        "    worker_connections 4096;",
        "}",
        "",
    ]
    return out


def _upstream(nodes: Sequence[Address], *, stream: bool) -> list[str]:
    if stream:
        out = [
            "# Each client connection gets a connection of its own to a node (the stream module",
            "# has no upstream keepalive), and the node's master routes it by its PROXY header.",
        ]
    else:
        out = [
            "# No keepalive here, on purpose: a kept-alive upstream connection would carry the",
            "# requests of many clients, but the node's master picks a worker once per",
            "# connection (from its first request's X-Forwarded-For), so later clients on it",
            "# would reach a worker that does not hold their session.",
        ]
    out.append("upstream sioctl {")
    if len(nodes) > 1:
        out += [
            "    # Each client address always reaches the same node (long-polling needs every",
            "    # request of a session at one process); 'consistent' moves only the clients of",
            "    # a node that is added or removed. Not ip_hash: it uses only 3 octets of IPv4.",
            "    hash $remote_addr consistent;",
        ]
    out += [f"    server {node} max_fails=1 fail_timeout=10s;" for node in nodes]
    out.append("}")
    return out


def _listen_lines(listen: Address, tls: Tls | None) -> list[str]:
    ssl = " ssl" if tls else ""
    where = str(listen.port) if listen.host == "*" else str(listen)
    return [f"listen {where}{ssl};"]


def _tls_lines(tls: Tls) -> list[str]:
    cert = _check_path(tls.certfile, "certificate file")
    key = _check_path(tls.keyfile, "key file")
    return [
        f'ssl_certificate "{cert}";',
        f'ssl_certificate_key "{key}";',
        "ssl_protocols TLSv1.2 TLSv1.3;",
    ]


def _local_http(local: LocalRun | None) -> list[str]:
    if not local:
        return []
    d = local.directory
    return [
        f'access_log "{d}/access.log";',
        f'client_body_temp_path "{d}/client_body";',
        f'proxy_temp_path "{d}/proxy";',
        f'fastcgi_temp_path "{d}/fastcgi";',
        f'uwsgi_temp_path "{d}/uwsgi";',
        f'scgi_temp_path "{d}/scgi";',
        "",
    ]


def _local_stream(local: LocalRun | None) -> list[str]:
    if not local:
        return []
    return [
        "log_format sioctl '$remote_addr -> $upstream_addr $status $bytes_sent $session_time';",
        f'access_log "{local.directory}/access.log" sioctl;',
        "",
    ]


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    pad = "    " * levels
    return [pad + line if line else "" for line in lines]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _check_nodes(nodes: Sequence[Address]) -> None:
    if not nodes:
        raise NginxConfigError("at least one node is needed")
    seen = set()
    for node in nodes:
        if node in seen:
            raise NginxConfigError(f"node {node} is given twice")
        seen.add(node)


def _check_host(host: str, what: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        raise NginxConfigError(f"{what}: {host!r} is neither an IP address nor a host name")


def _port(text: str, what: str) -> int:
    if not text.isdigit():
        raise NginxConfigError(f"{what}: port {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise NginxConfigError(f"{what}: port {port} is out of range")
    return port


def _server_name(name: str | None) -> str:
    if name is None:
        return "_"
    names = name.split()
    if not names or not all(_SERVER_NAME.match(n) for n in names):
        raise NginxConfigError(f"server name {name!r}: use host names, *.wildcards or _")
    return " ".join(names)


def _check_path(path: str, what: str) -> str:
    """``path`` unchanged, if it can go between double quotes in an nginx config."""
    if not path or any(c in path for c in '"\\\n\r;{}$') or path != path.strip():
        raise NginxConfigError(f"{what} {path!r}: not usable in an nginx config")
    return path
