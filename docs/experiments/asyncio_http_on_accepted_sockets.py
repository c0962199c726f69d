"""Experiment (docs/design.md §2b): uvicorn's protocol classes on sockets handed over by SCM_RIGHTS.

Question: can an asyncio worker serve a ``socketio.ASGIApp(AsyncServer)`` on client connections it
receives from a master over a SOCK_SEQPACKET channel, by attaching uvicorn's HTTP protocol with
``loop.connect_accepted_socket`` (no listening socket in the worker), and which of uvicorn's
implementations (httptools or h11 for HTTP; websockets-sansio, websockets or wsproto for
websockets; the asyncio or uvloop loop) serve polling, websocket and the upgrade cleanly, and
answer bad requests sanely?

Run: ``python docs/experiments/asyncio_http_on_accepted_sockets.py`` (about a minute; loopback
only; exits by itself). This process plays the master: it accepts on 127.0.0.1 and sends every
accepted fd to a server child over a socketpair; the child attaches uvicorn's protocol to it.
python-socketio's (sync) client drives each server: polling only, websocket only, polling
upgraded to websocket, ECHOES acked echoes each; then raw sockets send bad requests.
"""

from __future__ import annotations

import array
import asyncio
import functools
import json
import socket
import subprocess
import sys
import threading
import time
from typing import Any

ECHOES = 20
LOOPS = ("asyncio", "uvloop")
HTTPS = ("httptools", "h11")
WSS = ("websockets-sansio", "websockets", "wsproto")
BAD_REQUESTS = {
    "10k request line": b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "150 headers": b"GET / HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n",
    "header without colon": b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "garbage request line": b"\x16\x03\x01 garbage \xff\r\n\r\n",
}
STEP_TIMEOUT = 10.0


# ----------------------------------------------------------------------------- server child


def serve(loop_name: str, http: str, ws: str, channel_fd: int) -> None:
    """The worker side: an AsyncServer app on every fd the channel brings, until it ends."""
    import logging
    import warnings

    import socketio
    import uvicorn
    from uvicorn.server import ServerState

    warnings.simplefilter("default")  # show uvicorn's deprecation warnings on stderr
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="SERVER %(levelname)s %(name)s: %(message)s")
    # A short ping interval: python-socketio's Client.disconnect() on long-polling waits for
    # the pending GET, which python-engineio's AsyncServer releases only when the ping times out (it
    # does the same under a stock uvicorn): 20-25 s per polling test with the defaults.
    sio = socketio.AsyncServer(async_mode="asgi", ping_interval=2, ping_timeout=2)

    @sio.event
    async def echo(sid: str, data: Any) -> Any:
        return data

    app = socketio.ASGIApp(sio)
    # log_config=None: keep our logging; proxy_headers=False: the master names the client.
    config = uvicorn.Config(app, http=http, ws=ws, lifespan="off", log_config=None,
                            proxy_headers=False, access_log=False)
    config.load()
    factory = functools.partial(config.http_protocol_class, config=config,
                                server_state=ServerState(), app_state={})
    if loop_name == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    chan = socket.socket(fileno=channel_fd)
    chan.setblocking(False)
    done = loop.create_future()

    def on_readable() -> None:
        while True:
            fds = array.array("i")
            try:
                data, anc, _flags, _ = chan.recvmsg(4096, socket.CMSG_LEN(4 * fds.itemsize))
            except BlockingIOError:
                return
            if not data:
                loop.remove_reader(channel_fd)
                done.set_result(None)
                return
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for fd in fds:
                sock = socket.socket(fileno=fd)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                loop.create_task(loop.connect_accepted_socket(factory, sock))

    loop.add_reader(channel_fd, on_readable)
    print("ready", flush=True)
    loop.run_until_complete(done)
    chan.close()


# ----------------------------------------------------------------------------- master + clients


class Master:
    """Accepts on a loopback port and hands every connection to the child over a socketpair."""

    def __init__(self, loop_name: str, http: str, ws: str) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.master_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.child = subprocess.Popen(
            [sys.executable, __file__, "--serve", loop_name, http, ws, str(worker_end.fileno())],
            pass_fds=(worker_end.fileno(),), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True)
        worker_end.close()
        assert self.child.stdout is not None
        line = self.child.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"server child did not start: {line!r}")
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, addr = self.listener.accept()
            except OSError:
                return
            msg = json.dumps({"t": "conn", "addr": list(addr)}).encode()
            try:
                socket.send_fds(self.master_end, [msg], [conn.fileno()])
            except OSError:
                return
            finally:
                conn.close()

    def stop(self) -> str:
        """Stop the child; returns what it wrote on stderr."""
        self.listener.close()
        self.master_end.close()
        try:
            _out, err = self.child.communicate(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.child.kill()
            _out, err = self.child.communicate()
        return err


def client_test(url: str, transports: list[str], expect: str) -> str:
    import socketio

    client = socketio.Client(reconnection=False)
    try:
        client.connect(url, transports=transports, wait_timeout=STEP_TIMEOUT)
        acks = sum(1 for i in range(ECHOES) if client.call("echo", i, timeout=STEP_TIMEOUT) == i)
        if expect == "websocket":  # the upgrade happens in the background: give it a moment
            deadline = time.monotonic() + STEP_TIMEOUT
            while client.transport() != "websocket" and time.monotonic() < deadline:
                time.sleep(0.05)
        got = client.transport()
        if acks != ECHOES or got != expect:
            return f"FAIL ({acks}/{ECHOES} acks, ended on {got})"
        return "PASS"
    except Exception as exc:  # noqa: BLE001 - the experiment records any failure
        return f"FAIL ({type(exc).__name__}: {exc})"
    finally:
        client.disconnect()


def bad_request(port: int, payload: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT) as sock:
        sock.sendall(payload)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, ConnectionResetError) as exc:
            return f"({type(exc).__name__}) {data[:40]!r}" if data else f"({type(exc).__name__})"
    line = data.split(b"\r\n", 1)[0].decode("latin1")
    return f"`{line}`" if line else "(closed, no reply)"


def run_combo(loop_name: str, http: str, ws: str) -> dict[str, Any]:
    master = Master(loop_name, http, ws)
    url = f"http://127.0.0.1:{master.port}"
    row: dict[str, Any] = {
        "polling": client_test(url, ["polling"], "polling"),
        "websocket": client_test(url, ["websocket"], "websocket"),
        "upgrade": client_test(url, ["polling", "websocket"], "websocket"),
    }
    row["bad"] = {name: bad_request(master.port, payload) for name, payload in BAD_REQUESTS.items()}
    err = master.stop()
    row["server_errors"] = [line[:100] for line in err.splitlines()
                            if "Traceback" in line or " ERROR " in line or "Error" in line]
    row["warnings"] = sorted({line.split("Warning: ", 1)[1][:90] for line in err.splitlines()
                              if "Warning: " in line})
    return row


def versions() -> str:
    from importlib.metadata import version

    names = ("uvicorn", "httptools", "h11", "websockets", "wsproto", "uvloop",
             "python-socketio", "python-engineio")
    return ", ".join(f"{n} {version(n)}" for n in names) + f", Python {sys.version.split()[0]}"


def main() -> None:
    print(versions())
    print("\n| loop | http | ws | polling | websocket | upgrade | server errors |")
    print("|---|---|---|---|---|---|---|")
    bad_rows = []
    notes: set[str] = set()
    for loop_name in LOOPS:
        for http in HTTPS:
            for ws in WSS:
                row = run_combo(loop_name, http, ws)
                print(f"| {loop_name} | {http} | {ws} | {row['polling']} | {row['websocket']} | "
                      f"{row['upgrade']} | {len(row['server_errors'])} |", flush=True)
                notes.update(f"{loop_name}/{http}/{ws} error: {e}" for e in row["server_errors"])
                if ws == WSS[0]:
                    bad_rows.append((loop_name, http, row["bad"]))
                notes.update(f"{ws}: {w}" for w in row["warnings"])
    print("\n| loop | http | " + " | ".join(BAD_REQUESTS) + " |")
    print("|---|---|" + "---|" * len(BAD_REQUESTS))
    for loop_name, http, bad in bad_rows:
        print(f"| {loop_name} | {http} | " + " | ".join(bad.values()) + " |")
    for note in sorted(notes):
        print(f"warning seen: {note}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
