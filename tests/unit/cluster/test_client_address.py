"""PROXY protocol and forwarded-header parsing (cluster/client_address.py), on bytes."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from sioctl.cluster.client_address import (
    NEED_MORE,
    V2_SIGNATURE,
    BadHeader,
    ProxyHeader,
    TrustedProxies,
    forwarded_client,
    parse_proxy_header,
)


def v2(command: int, family: int, body: bytes) -> bytes:
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def test_v1_headers() -> None:
    header = b"PROXY TCP4 10.1.2.3 10.0.0.1 51000 7001\r\n"
    assert parse_proxy_header(header + b"GET / HTTP/1.1\r\n") == ProxyHeader(
        len(header), ("10.1.2.3", 51000))
    six = b"PROXY TCP6 2001:db8::7 ::1 4000 7001\r\n"
    assert parse_proxy_header(six) == ProxyHeader(len(six), ("2001:db8::7", 4000))
    assert parse_proxy_header(b"PROXY UNKNOWN\r\n") == ProxyHeader(15, None)
    for partial in (b"", b"P", b"PROXY TCP4 10.1.2.3 10.0.0.1 51"):
        assert parse_proxy_header(partial) is NEED_MORE


@pytest.mark.parametrize("bad", [
    b"GET / HTTP/1.1\r\n",
    b"PROXY TCP4 10.1.2.3 10.0.0.1 51000\r\n",
    b"PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n",
    b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
    b"PROXY TCP4 10.1.2.3 10.0.0.1 99999 2\r\n",
    b"PROXY " + b"9" * 200,
    b"PROXX TCP4",
])
def test_v1_garbage(bad: bytes) -> None:
    with pytest.raises(BadHeader):
        parse_proxy_header(bad)


def test_v2_headers() -> None:
    ipv4 = (socket.inet_aton("10.9.8.7") + socket.inet_aton("10.0.0.1")
            + struct.pack("!HH", 4321, 7001))
    data = v2(1, 0x11, ipv4)
    assert parse_proxy_header(data + b"rest") == ProxyHeader(len(data), ("10.9.8.7", 4321))
    ipv6 = (ipaddress.IPv6Address("2001:db8::9").packed + ipaddress.IPv6Address("::1").packed
            + struct.pack("!HH", 1234, 7001))
    data = v2(1, 0x21, ipv6)
    assert parse_proxy_header(data) == ProxyHeader(len(data), ("2001:db8::9", 1234))
    assert parse_proxy_header(v2(0, 0x00, b"")) == ProxyHeader(16, None)
    assert parse_proxy_header(v2(1, 0x11, ipv4)[:20]) is NEED_MORE
    assert parse_proxy_header(V2_SIGNATURE[:5]) is NEED_MORE


def test_v2_garbage() -> None:
    with pytest.raises(BadHeader):
        parse_proxy_header(V2_SIGNATURE[:11] + b"X" + b"\x21\x11\x00\x00")
    with pytest.raises(BadHeader):
        parse_proxy_header(V2_SIGNATURE + b"\x31\x11\x00\x00")  # version 3
    with pytest.raises(BadHeader):
        parse_proxy_header(V2_SIGNATURE + b"\x21\x11\xff\xff")  # absurd length


def head(*headers: str) -> bytes:
    return ("GET /socket.io/?EIO=4 HTTP/1.1\r\nHost: x\r\n" + "".join(
        f"{h}\r\n" for h in headers) + "\r\n").encode()


def test_forwarded_headers() -> None:
    assert forwarded_client(head("X-Real-IP: 198.51.100.7")) == "198.51.100.7"
    assert forwarded_client(head('Forwarded: for="[2001:db8::1]:4711";proto=http')) == (
        "2001:db8::1")
    assert forwarded_client(head("X-Forwarded-For: not-an-address")) is None
    assert forwarded_client(head()) is None
    assert forwarded_client(b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n") is NEED_MORE
    assert forwarded_client(b"x" * 9000) is None  # no head within the bound: the peer's address


PROXIES = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])


@pytest.mark.parametrize(("headers", "client"), [
    # A proxy appends what it saw: whatever stands left of it, the client wrote.
    (["X-Forwarded-For: 6.6.6.6, 203.0.113.5"], "203.0.113.5"),
    (["X-Forwarded-For: 6.6.6.6, 203.0.113.5, 10.0.0.2"], "203.0.113.5"),  # two proxies
    (["X-Forwarded-For: 6.6.6.6", "X-Forwarded-For: 203.0.113.5"], "203.0.113.5"),  # two lines
    (["X-Forwarded-For: 203.0.113.5:5000, 10.0.0.2"], "203.0.113.5"),
    (["X-Forwarded-For: 6.6.6.6, [2001:db8::5]:443"], "2001:db8::5"),
    (["X-Forwarded-For: 6.6.6.6,2001:db8::5"], "2001:db8::5"),
    (["X-Forwarded-For: 10.0.0.7, 127.0.0.1"], "10.0.0.7"),  # every hop a proxy: the leftmost
    # An entry that is no address ends the walk: the TCP peer's address is used.
    (["X-Forwarded-For: 6.6.6.6, unknown"], None),
    (["X-Forwarded-For: 203.0.113.5, garbage, 10.0.0.2"], None),
    # RFC 7239: the last elements are the proxies'; quoted IPv6 with a port, obfuscated nodes.
    (["Forwarded: for=6.6.6.6, for=192.0.2.60;proto=http;by=10.0.0.1"], "192.0.2.60"),
    (['Forwarded: for=6.6.6.6, for="[2001:db8:cafe::17]:4711", for=10.0.0.3'],
     "2001:db8:cafe::17"),
    (['Forwarded: for="192.0.2.43:47011"'], "192.0.2.43"),
    (["Forwarded: for=6.6.6.6", "Forwarded: For=192.0.2.61"], "192.0.2.61"),
    (['Forwarded: for="6.6.6.6, for=7.7.7.7";by=x, for=192.0.2.62'], "192.0.2.62"),
    (["Forwarded: for=6.6.6.6, for=_hidden, for=10.0.0.1"], None),
    (["Forwarded: for=6.6.6.6, for=unknown"], None),
    (["Forwarded: for=6.6.6.6, proto=https"], None),  # the last element names no client
    # X-Forwarded-For first: the header nginx and most proxies append to; the others pass
    # through as the client wrote them.
    (["Forwarded: for=6.6.6.6", "X-Forwarded-For: 6.6.6.7, 203.0.113.9"], "203.0.113.9"),
    (["X-Real-IP: 6.6.6.6", "X-Forwarded-For: 203.0.113.9"], "203.0.113.9"),
])
def test_rightmost_untrusted_client(headers: list[str], client: str | None) -> None:
    assert forwarded_client(head(*headers), PROXIES) == client


def test_any_peer_trusts_no_hop() -> None:
    """``*`` trusts whoever connects to name the client, not the addresses in the header."""
    anyone = TrustedProxies(["*"])
    assert forwarded_client(head("X-Forwarded-For: 6.6.6.6, 127.0.0.1"), anyone) == "127.0.0.1"
    assert forwarded_client(head("X-Forwarded-For: 6.6.6.6, 203.0.113.5"), anyone) == (
        "203.0.113.5")


def test_trusted_proxies() -> None:
    trusted = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    assert trusted.trusts("127.0.0.1") and trusted.trusts("10.20.30.40")
    assert trusted.trusts("::ffff:10.1.1.1")
    assert not trusted.trusts("127.0.0.2") and not trusted.trusts("nonsense")
    assert not TrustedProxies([]).trusts("127.0.0.1")
    assert TrustedProxies(["*"]).trusts("192.0.2.1")
