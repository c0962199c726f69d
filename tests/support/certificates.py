"""A self-signed certificate for the tests that serve TLS on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest


def self_signed(directory: Path) -> tuple[str, str]:
    """Write a self-signed certificate for 127.0.0.1 and its key into ``directory`` (openssl;
    the test is skipped without it): (certfile, keyfile)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/setup.sh installs it)")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return str(cert), str(key)


def green_tls_pair(ours: Any, theirs: Any, certfile: str, keyfile: str) -> tuple[Any, Any]:
    """TLS between two connected sockets of an eventlet-patched process (a green thread does
    the client's half of the handshake): ``ours`` the server's end with ``certfile`` and
    ``keyfile``, ``theirs`` the client's, trusting ``certfile``; both wrapped, returned."""
    import eventlet
    from eventlet.green import ssl  # the green one, whether the process is patched or not

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certfile, keyfile)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(certfile)
    ours = server.wrap_socket(ours, server_side=True, do_handshake_on_connect=False)
    theirs = client.wrap_socket(theirs, server_hostname="127.0.0.1",
                                do_handshake_on_connect=False)
    handshake = eventlet.spawn(theirs.do_handshake)
    ours.do_handshake()
    handshake.wait()
    return ours, theirs
