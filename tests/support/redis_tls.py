"""A redis-server of a test's own that speaks TLS only, on a free 127.0.0.1 port, with a
self-signed certificate for 127.0.0.1 made by Debian's ``openssl`` (the test skips without it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from tests.support.clients import free_port, wait_until

START_TIMEOUT = 10.0


class TlsRedis:
    """Started on construction; :meth:`stop` ends it. ``url(scheme)`` gives a ``rediss://``
    (or ``valkeys://``) URL that checks the server's certificate against its own CA file."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("openssl") is None:
            pytest.skip("no openssl to make a certificate")
        directory.mkdir(parents=True, exist_ok=True)
        self.cert = directory / "cert.pem"
        key = directory / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", str(key), "-out", str(self.cert), "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True, timeout=30)
        self.port = free_port()
        with open(directory / "redis.log", "wb") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", "0", "--tls-port", str(self.port), "--bind",
                 "127.0.0.1", "--tls-cert-file", str(self.cert), "--tls-key-file", str(key),
                 "--tls-ca-cert-file", str(self.cert), "--tls-auth-clients", "no", "--save", "",
                 "--appendonly", "no", "--dir", str(directory)],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._answers, START_TIMEOUT, what="the TLS redis-server to answer")
        except BaseException:
            self.stop()
            raise

    def url(self, scheme: str = "rediss") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/0?ssl_ca_certs={self.cert}"

    def _answers(self) -> bool:
        client = redis.Redis.from_url(self.url(), socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
