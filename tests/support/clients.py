"""Socket.IO clients that appear to come from a chosen 127.0.0.x address, and process helpers.

The master picks a worker from the client's IP address, so the tests need clients from many
addresses. Every address in 127.0.0.0/8 is local on Linux; a client binds its outgoing sockets to
one of them on both transports:

- long-polling: a ``requests`` adapter whose connection pool binds ``source_address``;
- websocket: websocket-client cannot bind, but takes a pre-connected ``socket``; a fresh one is
  made for every attempt (reconnects included) inside the engine.io client.
"""

from __future__ import annotations

import os
import queue
import socket
import ssl
import struct
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import engineio
import requests
import socketio
import websocket
from engineio import exceptions as eio_exceptions
from requests.adapters import HTTPAdapter

from sioctl.cluster.slots import slot_for_address
from tests.support.ports import free_port as free_port  # re-exported: tests import it from here


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself hold spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def wait_for_exit(pids: Sequence[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is alive; returns those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if pid_alive(pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def processes_with(marker: str) -> list[int]:
    """Live processes other than this one whose command line or environment holds ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        for part in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if marker.encode() in data and pid_alive(pid):
                found.append(pid)
                break
    return found


def children_of(ppid: int, name: str | None = None) -> list[int]:
    """Live child processes of ``ppid`` (only those whose command is ``name``, if given)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == ppid and fields[0] not in ("Z", "X"):
            if name is None or command == name:
                found.append(int(entry))
    return found


# Client source addresses used by the tests; with 2 workers they spread over both slots.
SOURCE_IPS = [f"127.0.0.{i}" for i in range(2, 10)]


def expected_slot(source_ip: str, workers: int) -> int:
    """The slot the master serves ``source_ip`` from: the master's own function."""
    return slot_for_address(source_ip, workers)


def ips_for_slot(slot: int, workers: int, candidates: Sequence[str] = SOURCE_IPS) -> list[str]:
    """The addresses among ``candidates`` that the master serves from ``slot``."""
    ips = [ip for ip in candidates if expected_slot(ip, workers) == slot]
    assert ips, f"none of {candidates} maps to slot {slot} of {workers}"
    return ips


class SourceAddressAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections leave from ``source_ip``."""

    def __init__(self, source_ip: str, **kwargs: Any) -> None:
        # HTTPAdapter.__init__ calls init_poolmanager, which reads this.
        self.source_ip = source_ip
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source_ip, 0)
        super().init_poolmanager(*args, **kwargs)


def bound_session(source_ip: str) -> requests.Session:
    """A requests.Session whose HTTP connections come from ``source_ip``."""
    session = requests.Session()
    adapter = SourceAddressAdapter(source_ip)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def bound_engineio_class(source_ip: str) -> type[engineio.Client]:
    """An engineio.Client class whose websocket connections come from ``source_ip``."""

    class BoundEngineIOClient(engineio.Client):
        # Set by BoundClient.handle_in_order.
        in_order = False

        def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
            if event == "message" and self.in_order:
                # python-engineio runs each message's handler in a thread of its own: the
                # handlers then run in the order the threads are scheduled, which under load
                # is not always the order the messages came in.
                kwargs["run_async"] = False
            return super()._trigger_event(event, *args, **kwargs)

        def _connect_websocket(self, url: str, headers: dict[str, str], engineio_path: str) -> Any:
            upgrade = bool(self.sid)
            parts = urllib.parse.urlsplit(url)
            host = parts.hostname or "127.0.0.1"
            port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
            try:
                sock = socket.create_connection(
                    (host, port), timeout=self.request_timeout, source_address=(source_ip, 0)
                )
            except OSError as exc:
                # engineio's own handling of a failed attempt: an upgrade stays on polling, a
                # fresh connection raises the error the reconnect loop retries on.
                if upgrade:
                    return False
                raise eio_exceptions.ConnectionError(f"Connection error: {exc}") from exc
            self.websocket_extra_options["socket"] = sock
            try:
                connected = super()._connect_websocket(url, headers, engineio_path)
            except BaseException:
                sock.close()
                raise
            finally:
                # Never hand the same socket to a later attempt.
                self.websocket_extra_options.pop("socket", None)
            if not connected:
                sock.close()
            return connected

    return BoundEngineIOClient


class BoundClient(socketio.Client):
    """A socketio.Client from ``source_ip`` that records the events it is told to record.

    ``connect(url)`` uses the transports given at construction unless told otherwise.
    """

    def __init__(self, source_ip: str, transports: Sequence[str], **kwargs: Any) -> None:
        # socketio.Client.__init__ builds the engine.io client, which needs the address.
        self.source_ip = source_ip
        self.default_transports = list(transports)
        self.received: dict[str, queue.Queue[Any]] = {}
        self.disconnects = 0
        kwargs.setdefault("http_session", bound_session(source_ip))
        kwargs.setdefault("reconnection_delay", 0.5)
        kwargs.setdefault("reconnection_delay_max", 1.0)
        super().__init__(**kwargs)
        self.on("disconnect", self._count_disconnect)

    def _engineio_client_class(self) -> type[engineio.Client]:
        return bound_engineio_class(self.source_ip)

    def _count_disconnect(self, *args: Any) -> None:
        self.disconnects += 1

    def connect(self, url: str, **kwargs: Any) -> None:
        kwargs.setdefault("transports", self.default_transports)
        kwargs.setdefault("wait_timeout", 10)
        super().connect(url, **kwargs)

    def record(self, event: str) -> queue.Queue[Any]:
        """Collect every ``event`` payload from now on; returns the queue they arrive in."""
        received: queue.Queue[Any] = queue.Queue()
        self.received[event] = received
        self.on(event, received.put)
        return received

    def next_event(self, event: str, timeout: float = 10.0) -> Any:
        """The next recorded ``event`` payload; raises queue.Empty after ``timeout`` seconds."""
        return self.received[event].get(timeout=timeout)

    def handle_in_order(self) -> None:
        """Run the event handlers in the order the messages arrive, on the connection's
        reading thread: for a test that checks order. A handler must then not wait for this
        client (no ``call`` from inside one)."""
        self.eio.in_order = True

    def transport(self) -> str:
        """The engine.io transport in use now: 'polling' or 'websocket'."""
        return str(self.eio.current_transport)


def make_client(
    source_ip: str, transports: Sequence[str] = ("polling", "websocket"), **kwargs: Any
) -> BoundClient:
    """A socketio.Client whose polling and websocket connections both come from ``source_ip``."""
    return BoundClient(source_ip, transports, **kwargs)


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; returns it.

    Raises AssertionError naming ``what`` when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate}")
        time.sleep(interval)


def wait_for_upgrade(client: BoundClient, timeout: float = 10.0) -> None:
    """Wait until ``client`` has moved from polling to websocket."""
    wait_until(lambda: client.transport() == "websocket", timeout, what="websocket upgrade")


def whoami(client: socketio.Client, timeout: float = 10.0) -> dict[str, Any]:
    """The chat app's answer to 'whoami': slot, pid, remote_addr, sid."""
    answer = client.call("whoami", timeout=timeout)
    assert isinstance(answer, dict), f"whoami answered {answer!r}"
    return answer


def try_whoami(client: socketio.Client, timeout: float = 2.0) -> dict[str, Any] | None:
    """whoami, or None while the client is not connected or gets no answer."""
    if not client.connected:
        return None
    try:
        return whoami(client, timeout)
    except socketio.exceptions.SocketIOError:
        return None

def partial_client_hello() -> bytes:
    """The start of a real TLS client's ClientHello, up to its first newline byte (0x0a, in
    the extension list): eventlet.wsgi answers a full one, a "request line" with a newline,
    with a 400 at once; this much it just waits on, as for a slow TLS client."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    tls = context.wrap_bio(incoming, outgoing, server_hostname="example.com")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    return hello.split(b"\n", 1)[0]


def tls_wrapped(sock: socket.socket, certfile: str | None) -> socket.socket:
    """``sock`` (connected) as it is without ``certfile``; with it, wrapped in TLS trusting
    only ``certfile``, the handshake done (websocket-client's ``socket=`` skips its own TLS:
    its ``ws://`` URL then speaks over this one). On failure ``sock`` is closed."""
    if certfile is None:
        return sock
    try:
        return ssl.create_default_context(cafile=certfile).wrap_socket(
            sock, server_hostname="127.0.0.1")
    except BaseException:
        sock.close()
        raise


def open_session(port: int, source_ip: str, certfile: str | None = None) -> websocket.WebSocket:
    """A websocket with the default namespace connected, from ``source_ip``; over TLS
    trusting ``certfile`` when it is given (a cluster started with --certfile)."""
    sock = tls_wrapped(socket.create_connection(("127.0.0.1", port), timeout=10,
                                                source_address=(source_ip, 0)), certfile)
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", socket=sock, timeout=10)
    opening = ws.recv()
    assert isinstance(opening, str) and opening.startswith("0"), opening
    ws.send("40")
    reply = ws.recv()
    assert isinstance(reply, str) and reply.startswith("40"), reply
    return ws


def small_buffer_socket(port: int, source_ip: str, request: bytes = b"") -> socket.socket:
    """A TCP connection from ``source_ip`` to the cluster on ``port`` whose receive buffer is
    small (4 KiB), so that what the worker writes backs up soon once the client stops reading;
    ``request`` sent on it. The caller closes it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    try:
        sock.bind((source_ip, 0))
        sock.connect(("127.0.0.1", port))
        if request:
            sock.sendall(request)
    except BaseException:
        sock.close()
        raise
    return sock


def reset(ws: websocket.WebSocket) -> None:
    """Drop the connection with a TCP reset, as a client that vanishes does."""
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.sock.close()
