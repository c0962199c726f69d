"""The real client address of a connection that came through a proxy.

Behind nginx or a load balancer every connection comes from the proxy, so hashing the TCP peer
would send every client to one worker. Two ways to learn the real address, both read here
without ever taking bytes the worker needs:

- PROXY protocol v1/v2 (``--proxy-protocol``): the proxy sends a header first; the master
  consumes exactly that header (peek, then read its length) and the rest of the stream is
  untouched.
- Trusted forwarded headers (``--forwarded-allow-ips``): for connections from those peers the
  master peeks at the HTTP request head (MSG_PEEK: nothing is consumed) and takes the client
  from ``X-Forwarded-For``, ``Forwarded`` or ``X-Real-IP``: the rightmost address that is not
  a trusted proxy, since what a client sent itself stands on the left.

Both parsers work on bytes and return ``NEED_MORE`` until enough has arrived; the caller bounds
the size and the time.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # the longest v1 header, CRLF included
V2_MAX = 16 + 216  # fixed part + the largest address block we accept
HEAD_MAX = 8192  # request head peeked for forwarded headers


class NeedMore:
    """Not enough bytes yet."""


NEED_MORE = NeedMore()


class BadHeader(ValueError):
    """The bytes are not what the listener expects; the connection is closed."""


@dataclass
class ProxyHeader:
    """A parsed PROXY header: its length in bytes, and the source address (None: use the
    peer's, as for ``PROXY UNKNOWN`` or a v2 LOCAL command)."""

    length: int
    address: tuple[str, int] | None


def parse_proxy_header(data: bytes) -> ProxyHeader | NeedMore:
    """Parse a PROXY protocol v1 or v2 header at the start of ``data``; raises BadHeader."""
    if data[:1] == b"P":
        return _parse_v1(data)
    if data[:1] == b"\r":
        return _parse_v2(data)
    if data:
        raise BadHeader("no PROXY protocol header")
    return NEED_MORE


def _parse_v1(data: bytes) -> ProxyHeader | NeedMore:
    if not b"PROXY "[: len(data)] == data[:6]:
        raise BadHeader("no PROXY protocol header")
    end = data.find(b"\r\n")
    if end < 0:
        if len(data) >= V1_MAX:
            raise BadHeader("PROXY v1 header too long")
        return NEED_MORE
    parts = data[:end].decode("ascii", "replace").split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(end + 2, None)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise BadHeader("malformed PROXY v1 header")
    source, port = _address(parts[2]), _port(parts[4])
    if (source.version == 4) != (parts[1] == "TCP4"):
        raise BadHeader("PROXY v1 address does not match its family")
    _address(parts[3]), _port(parts[5])
    return ProxyHeader(end + 2, (str(source), port))


def _parse_v2(data: bytes) -> ProxyHeader | NeedMore:
    if len(data) < 16:
        if not V2_SIGNATURE.startswith(data[:12]):
            raise BadHeader("no PROXY protocol header")
        return NEED_MORE
    if data[:12] != V2_SIGNATURE:
        raise BadHeader("no PROXY protocol header")
    version_command, family, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if version_command >> 4 != 2 or version_command & 0x0F not in (0, 1):
        raise BadHeader("unsupported PROXY v2 version or command")
    if 16 + length > V2_MAX:
        raise BadHeader("PROXY v2 header too long")
    if len(data) < 16 + length:
        return NEED_MORE
    body = data[16 : 16 + length]
    if version_command & 0x0F == 0:  # LOCAL: the proxy's own connection (health checks)
        return ProxyHeader(16 + length, None)
    if family >> 4 == 1 and len(body) >= 12:  # AF_INET
        return ProxyHeader(16 + length, (str(ipaddress.IPv4Address(body[0:4])),
                                         struct.unpack("!H", body[8:10])[0]))
    if family >> 4 == 2 and len(body) >= 36:  # AF_INET6
        return ProxyHeader(16 + length, (str(ipaddress.IPv6Address(body[0:16])),
                                         struct.unpack("!H", body[32:34])[0]))
    if family >> 4 in (0, 3):  # UNSPEC, or AF_UNIX: no IP to hash
        return ProxyHeader(16 + length, None)
    raise BadHeader("malformed PROXY v2 address block")


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise BadHeader("malformed address in PROXY header") from None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise BadHeader("malformed port in PROXY header")
    return int(text)


def forwarded_client(head: bytes, trusted: TrustedProxies | None = None) -> str | None | NeedMore:
    """The client address named by a request head's forwarded headers, None when it names
    none we can use (use the peer's), NEED_MORE until the head is complete. Never raises.

    Proxies append to ``X-Forwarded-For`` and ``Forwarded``, after whatever the client sent:
    only the entries on the right were written by proxies. The client is the rightmost entry
    that is not itself one of the ``trusted`` proxies (nginx's ``real_ip_recursive``); an
    entry that is no IP address (``unknown``, an obfuscated ``_id``, garbage) ends the walk
    with None. ``X-Forwarded-For`` is read first (every common proxy sets or appends it),
    then ``Forwarded``, then ``X-Real-IP``: a header the proxy does not touch passes through
    as the client wrote it, so the proxy must set or append the first one present.
    """
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return NEED_MORE if len(head) < HEAD_MAX else None
    headers: dict[str, list[str]] = {}
    for line in head[:end].split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            key = name.strip().lower().decode("latin-1")
            headers.setdefault(key, []).append(value.strip().decode("latin-1"))
    if "x-forwarded-for" in headers:
        # Several header lines are one list, in order (RFC 9110 5.3).
        entries = ",".join(headers["x-forwarded-for"]).split(",")
        return _rightmost_client([_host(e.strip()) for e in entries if e.strip()], trusted)
    if "forwarded" in headers:
        return _rightmost_client(forwarded_for(",".join(headers["forwarded"])), trusted)
    if "x-real-ip" in headers:
        return _ip(headers["x-real-ip"][-1])
    return None


def _rightmost_client(hops: list[str | None], trusted: TrustedProxies | None) -> str | None:
    """The rightmost address of ``hops`` that is not a trusted proxy; None at an entry that
    is no address; the leftmost when every one is a trusted proxy."""
    for hop in reversed(hops):
        if hop is None or trusted is None or not trusted.lists(hop):
            return hop
    return hops[0] if hops else None


def forwarded_for(value: str) -> list[str | None]:
    """The ``for=`` node of every element of an RFC 7239 ``Forwarded`` value, in order: its IP
    address, or None when it is missing or no IP (``unknown``, an obfuscated ``_id``)."""
    nodes: list[str | None] = []
    for element in _split_quoted(value, ","):
        node = None
        for pair in _split_quoted(element, ";"):
            key, _, item = pair.strip().partition("=")
            if key.strip().lower() == "for":
                node = _host(_unquote(item.strip()))
                break
        nodes.append(node)
    return nodes


def _split_quoted(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside quoted strings (with backslash escapes)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
        out, escaped = [], False
        for char in text:
            if char == "\\" and not escaped:
                escaped = True
                continue
            out.append(char)
            escaped = False
        return "".join(out)
    return text


def _host(text: str) -> str | None:
    """The IP address of a node: ``1.2.3.4``, ``1.2.3.4:80``, ``[2001:db8::1]:80``,
    ``2001:db8::1``; None for anything else."""
    if text.startswith("["):
        close = text.find("]")
        rest = text[close + 1 :] if close > 0 else "x"
        if close < 0 or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
        return _ip(text[1:close])
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return _ip(host) if port.isdigit() else None
    return _ip(text)


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


class TrustedProxies:
    """``--forwarded-allow-ips``: addresses and networks, or ``*`` for any peer."""

    def __init__(self, entries: list[str]) -> None:
        self.any = "*" in entries
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries if e != "*"]

    def __bool__(self) -> bool:
        return self.any or bool(self.networks)

    def trusts(self, host: str) -> bool:
        """True when connections from ``host`` may name their client (``*``: any host)."""
        if self.any:
            return True
        return self.lists(host)

    def lists(self, host: str) -> bool:
        """True when ``host`` is in a listed address or network. ``*`` lists nothing: it
        trusts whoever connects, not the addresses inside a forwarded header, so with ``*``
        the rightmost entry of the header is the client."""
        if not self.networks:
            return False  # the usual case, asked on every accept: no address parsing
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)
