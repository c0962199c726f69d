"""A python-socketio client for ``https://``/``wss://`` that does not race on its TLS socket.

python-engineio's threaded client reads the websocket in one thread and writes it in another,
and websocket-client's ``enable_multithread`` locks reads and writes separately, so one
``ssl.SSLSocket`` sees ``SSL_read`` and ``SSL_write`` at once. OpenSSL forbids that: now and
then the read returns ``b""`` ("Connection to remote host was lost") or loses a record and the
next packet waits for the following ping (python-engineio#461, python-socketio#1568). Servers
are not involved: socket.io-client over the same TLS port never fails. The socket below takes
one lock for every TLS operation and waits for readability outside it.
"""

from __future__ import annotations

import selectors
import ssl
import threading
import time

import requests
import socketio

from tests.support.clients import SourceAddressAdapter


class SerializedSSLSocket(ssl.SSLSocket):
    """An ``SSLSocket`` whose reads and writes never overlap, from any number of threads."""

    def _tls_lock(self) -> threading.Lock:
        # SSLSocket instances are built by SSLContext.wrap_socket, not __init__.
        return self.__dict__.setdefault("_serialized_lock", threading.Lock())

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        timeout = self.gettimeout()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self.pending():
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                with selectors.DefaultSelector() as selector:
                    selector.register(self, selectors.EVENT_READ)
                    if not selector.select(remaining):
                        raise TimeoutError("timed out")
            with self._tls_lock():
                # Non-blocking under the lock: a record that is not complete yet (or a
                # session ticket, which carries no data) must not keep the writer waiting.
                self.settimeout(0)
                try:
                    return super().recv(buflen, flags)
                except ssl.SSLWantReadError:
                    continue
                finally:
                    self.settimeout(timeout)

    def send(self, data: bytes, flags: int = 0) -> int:  # type: ignore[override]
        with self._tls_lock():
            return super().send(data, flags)

    def sendall(self, data: bytes, flags: int = 0) -> None:  # type: ignore[override]
        with self._tls_lock():
            super().sendall(data, flags)


def tls_client(certfile: str, source_ip: str | None = None) -> socketio.Client:
    """A client that trusts only ``certfile``; its polling requests come from ``source_ip``."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace our certificate
    session.verify = certfile
    if source_ip is not None:
        session.mount("https://", SourceAddressAdapter(source_ip))
    context = ssl.create_default_context(cafile=certfile)
    context.sslsocket_class = SerializedSSLSocket
    return socketio.Client(
        http_session=session,
        websocket_extra_options={"sslopt": {"context": context}},
        reconnection=False,
    )
