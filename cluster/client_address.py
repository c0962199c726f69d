"""The real client address of a connection that came through a proxy.

Behind nginx or a load balancer every connection comes from the proxy, so hashing the TCP peer
would send every client to one worker. Two ways to learn the real address, both read here
without ever taking bytes the worker needs:

- PROXY protocol v1/v2 (``--proxy-protocol``): the proxy sends a header first; the master
  consumes exactly that header (peek, then read its length) and the rest of the stream is
  untouched.
- Trusted forwarded headers (``--forwarded-allow-ips``): for connections from those peers the
  master peeks at the HTTP request head (MSG_PEEK: nothing is consumed) and takes the client
  from ``Forwarded``, ``X-Forwarded-For`` or ``X-Real-IP``.

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


def forwarded_client(head: bytes) -> str | None | NeedMore:
    """The client address named by a request head's forwarded headers, None when it names
    none (use the peer's), NEED_MORE until the head is complete. Never raises."""
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return NEED_MORE if len(head) < HEAD_MAX else None
    headers: dict[str, str] = {}
    for line in head[:end].split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            key = name.strip().lower().decode("latin-1")
            headers.setdefault(key, value.strip().decode("latin-1"))
    for candidate in (_from_forwarded(headers.get("forwarded")),
                      _first(headers.get("x-forwarded-for")),
                      _first(headers.get("x-real-ip"))):
        if candidate is not None:
            return candidate
    return None


def _first(value: str | None) -> str | None:
    """The leftmost address of a comma-separated list: the original client."""
    if not value:
        return None
    return _ip(value.split(",")[0].strip())


def _from_forwarded(value: str | None) -> str | None:
    """``for=`` of the first element of an RFC 7239 ``Forwarded`` header."""
    if not value:
        return None
    for pair in value.split(",")[0].split(";"):
        key, _, item = pair.strip().partition("=")
        if key.lower() == "for":
            item = item.strip('"')
            if item.startswith("["):
                item = item[1 : item.find("]")]
            elif item.count(":") == 1:
                item = item.split(":")[0]
            return _ip(item)
    return None


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
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
        if self.any:
            return True
        if not self.networks:
            return False  # the usual case, asked on every accept: no address parsing
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)
