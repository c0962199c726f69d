"""Experiment: can gunicorn 27's HTTP layer serve python-socketio on eventlet?

Run from the repository root:

    python docs/experiments/gunicorn_http_on_eventlet.py

One eventlet-monkey-patched process serves the same python-socketio app
(socketio.Server(async_mode="eventlet"), an ``echo`` event answered with an
ack, wrapped in socketio.WSGIApp) on four 127.0.0.1 ports:

  eventlet.wsgi        eventlet.wsgi.server, plus a small WSGI adapter that
                       writes access lines with gunicorn.glogging.Logger
  gunicorn/as-is       green accept loop + gunicorn.http.RequestParser +
                       gunicorn.http.wsgi.create + gunicorn's Response, with a
                       keep-alive loop modelled on gunicorn/workers/base_async.py;
                       environ exactly as gunicorn builds it
  gunicorn/+handled    the same, plus the "already handled" check eventlet.wsgi
                       does after a websocket (eventlet.wsgi.WSGI_LOCAL)
  gunicorn/+handled+fd the same, plus a client.makefile() reference held for
                       the connection's life, as eventlet.wsgi has one
  gunicorn/-socket     control: as-is, but environ["gunicorn.socket"] removed,
                       to show what engineio's websocket depends on

python-socketio's Client (in a child process that does not import eventlet)
drives each port: polling only, websocket only, polling upgraded to websocket,
20 acked echoes each. Raw sockets then send an over-long request line, too many
headers, a header without a colon and a garbage request line.

Loopback only; every wait is bounded; prints two tables and some facts, exits.
"""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from importlib.metadata import version  # noqa: E402

N_ECHOES = 20
CLIENT_TIMEOUT = 40.0
TESTS = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    "upgrade": ["polling", "websocket"],
}
LIMIT_PROBES = {
    "10k request line": b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "150 headers": b"GET / HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n",
    "header w/o colon": b"GET / HTTP/1.1\r\nHost: x\r\nBadHeader\r\n\r\n",
    "garbage line": b"\x01\x02 nonsense\r\n\r\n",
}


# --------------------------------------------------------------------------
# Client side (child process, no eventlet)
# --------------------------------------------------------------------------

def run_client(url: str, test: str) -> dict:
    """Connect with one transport set, do N_ECHOES acked echoes, report."""
    import socketio

    sio = socketio.Client(reconnection=False)
    out: dict = {"ok": False, "acks": 0, "transport": None, "error": None}
    try:
        sio.connect(url, transports=TESTS[test], wait_timeout=5)
        if test == "upgrade":
            # The upgrade runs in the background; give it a bounded time.
            deadline = time.monotonic() + 5
            while sio.transport() != "websocket" and time.monotonic() < deadline:
                time.sleep(0.05)
        for i in range(N_ECHOES):
            if sio.call("echo", {"n": i}, timeout=5) == {"n": i}:
                out["acks"] += 1
        out["transport"] = sio.transport()
        want = "polling" if test == "polling" else "websocket"
        out["ok"] = out["acks"] == N_ECHOES and out["transport"] == want
        if out["transport"] != want:
            out["error"] = f"ended on {out['transport']}, wanted {want}"
    except Exception as e:  # a probe reports, it does not raise
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        try:
            sio.disconnect()
        except Exception:
            pass
    return out


def raw_status(port: int, request: bytes) -> str:
    """Send raw bytes; return the reply's status line, or describe the reply."""
    import socket

    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        try:
            while len(data) < 65536:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            if not data:
                return f"{type(e).__name__}: {e}"
    if not data:
        return "closed, no reply"
    first = data.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
    if first.startswith("HTTP/"):
        return first
    # http.server answers what it takes for HTTP/0.9 with a bare HTML body.
    code = ""
    if b"Error code: " in data:
        code = " " + data.split(b"Error code: ", 1)[1][:3].decode("latin-1")
    return f"no status line, HTML body{code}"


# --------------------------------------------------------------------------
# Server side (this process, monkey-patched)
# --------------------------------------------------------------------------

def server_main() -> int:
    import eventlet

    eventlet.monkey_patch()

    import datetime
    import errno
    import inspect
    import logging
    import pkgutil
    import shutil
    import tempfile

    import eventlet.green.subprocess as green_subprocess
    import eventlet.wsgi
    import gunicorn.workers
    import socketio
    from gunicorn.config import Config
    from gunicorn.glogging import Logger
    from gunicorn.http import RequestParser
    from gunicorn.http import wsgi as gunicorn_wsgi
    from gunicorn.http.errors import (
        LimitRequestHeaders,
        LimitRequestLine,
        NoMoreData,
        ParseException,
    )
    from gunicorn.util import write_error

    tmp = tempfile.mkdtemp(prefix="sioctl-exp-")
    problems: dict[str, list[str]] = {}   # server name -> errors seen server-side
    current = {"server": ""}              # which server the running test targets

    def note(server: str, text: str) -> None:
        problems.setdefault(server, []).append(text.strip())

    class LibraryErrors(logging.Handler):
        """engineio/socketio log their own errors; file them under the current server."""

        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                msg = record.getMessage()
                if record.exc_info and record.exc_info[1] is not None:
                    e = record.exc_info[1]
                    msg += f" [{type(e).__name__}: {e}]"
                note(current["server"], "engineio: " + msg)

    for logger_name in ("engineio.server", "socketio.server"):
        logging.getLogger(logger_name).addHandler(LibraryErrors())
        logging.getLogger(logger_name).propagate = False

    class ErrorsStream:
        """wsgi.errors replacement: eventlet's websocket writes close errors here."""

        def __init__(self, server: str) -> None:
            self.server = server

        def write(self, text: str) -> None:
            note(self.server, "wsgi.errors: " + text)

        def flush(self) -> None:
            pass

    sio_servers: dict[str, socketio.Server] = {}
    active = {"requests": 0}              # app calls in progress, all servers

    def make_app(server: str):
        sio = socketio.Server(async_mode="eventlet", ping_interval=5)
        sio_servers[server] = sio

        @sio.on("echo")
        def echo(sid, data):
            return data

        app = socketio.WSGIApp(sio)

        def with_errors_stream(environ, start_response):
            environ["wsgi.errors"] = ErrorsStream(server)
            active["requests"] += 1
            try:
                return app(environ, start_response)
            finally:
                active["requests"] -= 1

        return with_errors_stream

    # One access logger for all servers: glogging.Logger configures the
    # process-wide "gunicorn.access" logger, so a second Logger would take
    # over the first one's handlers. The port tells the servers apart.
    log_cfg = Config()
    log_cfg.set("accesslog", os.path.join(tmp, "access.log"))
    log_cfg.set("errorlog", os.path.join(tmp, "error.log"))
    log_cfg.set("access_log_format", '%(h)s "%(r)s" %(s)s %(b)s port=%({server_port}e)s')
    access_logger = Logger(log_cfg)

    # ---------------- (b) eventlet.wsgi + gunicorn access-log adapter -------

    class LoggedResponse:
        """What gunicorn.glogging.Logger.atoms() reads from a response."""

        def __init__(self) -> None:
            self.status: str | None = None
            self.headers: list = []
            self.sent = 0

    class EnvironRequest:
        """What atoms() reads from a request: header pairs, rebuilt from environ."""

        def __init__(self, environ: dict) -> None:
            self.headers = [(k[5:].replace("_", "-"), v) for k, v in environ.items()
                            if k.startswith("HTTP_")]

    def access_log_adapter(app, logger: Logger):
        """WSGI middleware for eventlet.wsgi: one gunicorn-format access line per request."""

        def wrapped(environ, start_response):
            start = datetime.datetime.now()
            resp = LoggedResponse()
            qs = environ.get("QUERY_STRING")
            # atoms() indexes environ["RAW_URI"], which eventlet.wsgi does not set.
            environ.setdefault("RAW_URI", environ.get("PATH_INFO", "") + ("?" + qs if qs else ""))

            def log() -> None:
                logger.access(resp, EnvironRequest(environ), environ,
                              datetime.datetime.now() - start)

            def recording_start_response(status, headers, exc_info=None):
                resp.status, resp.headers = status, headers
                return start_response(status, headers, exc_info)

            result = app(environ, recording_start_response)
            if getattr(eventlet.wsgi.WSGI_LOCAL, "already_handled", False):
                # A websocket that has now closed. engineio calls start_response("200 OK")
                # after an upgraded websocket ends; eventlet.wsgi discards that.
                resp.status = "101 Switching Protocols"
                log()
                return result

            def body():
                try:
                    for chunk in result:
                        resp.sent += len(chunk)
                        yield chunk
                finally:
                    if hasattr(result, "close"):
                        result.close()
                    log()

            return body()

        return wrapped

    # ---------------- (a) gunicorn HTTP layer on green sockets --------------

    def gunicorn_serve(listener, app, cfg: Config, logger: Logger, name: str,
                       check_handled: bool, drop_socket: bool, hold_fd: bool) -> None:
        """Accept green sockets and serve them with gunicorn's HTTP/1.1 machinery."""
        server_name = listener.getsockname()

        def one_request(req, client, addr) -> bool:
            """Serve one parsed request; True to keep the connection open."""
            start = datetime.datetime.now()
            resp, environ = gunicorn_wsgi.create(req, client, addr, server_name, cfg)
            if drop_socket:
                del environ["gunicorn.socket"]
            if check_handled:
                eventlet.wsgi.WSGI_LOCAL.already_handled = False
            respiter = app(environ, resp.start_response)
            if check_handled and getattr(eventlet.wsgi.WSGI_LOCAL, "already_handled", False):
                # eventlet's websocket wrote its own 101 and has run to the end.
                resp.status = "101 Switching Protocols"
                logger.access(resp, req, environ, datetime.datetime.now() - start)
                return False
            try:
                for item in respiter:
                    resp.write(item)
                resp.close()
            finally:
                logger.access(resp, req, environ, datetime.datetime.now() - start)
                if hasattr(respiter, "close"):
                    respiter.close()
            return not resp.should_close()

        def connection(client, addr) -> None:
            parser = RequestParser(cfg, client, addr)
            # eventlet.wsgi reads through client.makefile(), and that reference keeps
            # the fd open when the websocket code closes the socket and then shuts
            # it down again. hold_fd copies that.
            fd_ref = client.makefile("rb") if hold_fd else None
            try:
                while True:
                    req = None
                    with eventlet.Timeout(cfg.keepalive, False):
                        req = next(parser)
                    if not req or not one_request(req, client, addr):
                        break
            except (StopIteration, NoMoreData):
                pass
            except LimitRequestLine as e:
                write_error(client, 414, "URI Too Long", str(e))
            except LimitRequestHeaders as e:
                write_error(client, 431, "Request Header Fields Too Large", str(e))
            except ParseException as e:
                write_error(client, 400, "Bad Request", str(e))
            except OSError as e:
                if e.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                    note(name, f"serve: {type(e).__name__}: {e}")
            except Exception as e:
                note(name, f"serve: {type(e).__name__}: {e}")
            finally:
                if fd_ref is not None:
                    fd_ref.close()
                client.close()

        while True:
            client, addr = listener.accept()
            eventlet.spawn_n(connection, client, addr)

    # ---------------- start the servers -----------------------------------

    def listen():
        return eventlet.listen(("127.0.0.1", 0), reuse_port=False)

    servers: dict[str, int] = {}
    sock = listen()
    servers["eventlet.wsgi"] = sock.getsockname()[1]
    eventlet.spawn_n(eventlet.wsgi.server, sock,
                     access_log_adapter(make_app("eventlet.wsgi"), access_logger),
                     log=open(os.path.join(tmp, "eventlet.log"), "w"),
                     log_output=False)
    for name, check_handled, drop_socket, hold_fd in (
            ("gunicorn/as-is", False, False, False),
            ("gunicorn/+handled", True, False, False),
            ("gunicorn/+handled+fd", True, False, True),
            ("gunicorn/-socket", False, True, False)):
        sock = listen()
        servers[name] = sock.getsockname()[1]
        eventlet.spawn_n(gunicorn_serve, sock, make_app(name), Config(), access_logger,
                         name, check_handled, drop_socket, hold_fd)

    # ---------------- drive them ------------------------------------------

    def client(port: int, test: str) -> dict:
        cmd = [sys.executable, os.path.abspath(__file__), "--client",
               f"http://127.0.0.1:{port}", test]
        try:
            p = green_subprocess.run(cmd, capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
        except green_subprocess.TimeoutExpired:
            return {"ok": False, "error": f"client timed out after {CLIENT_TIMEOUT}s"}
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if lines:
            return json.loads(lines[-1])
        return {"ok": False, "error": f"client exit {p.returncode}: {p.stderr.strip()[-300:]}"}

    results: dict[str, dict] = {}
    for name, port in servers.items():
        row: dict = {}
        for test in TESTS:
            current["server"] = name
            before = len(problems.get(name, []))
            outcome = client(port, test)
            # Errors of this test must be filed under it: wait (bounded) until
            # the server has no session and no request in progress.
            deadline = time.monotonic() + 20
            while (sio_servers[name].eio.sockets or active["requests"]) \
                    and time.monotonic() < deadline:
                eventlet.sleep(0.05)
            eventlet.sleep(0.3)  # a failing write after the app returned
            row[test] = (outcome, problems.get(name, [])[before:])
        for probe, raw in LIMIT_PROBES.items():
            row[probe] = raw_status(port, raw)
        results[name] = row

    # ---------------- report ----------------------------------------------

    def http_layer(errs: list) -> list:
        """Errors from the HTTP layer (engineio's own log lines are listed apart)."""
        return [e for e in errs if not e.startswith("engineio:")]

    def verdict(outcome: dict, errs: list) -> str:
        if not outcome.get("ok"):
            return "FAIL"
        return "pass*" if http_layer(errs) else "PASS"

    print("python " + sys.version.split()[0] + ", " + ", ".join(
        f"{d} {version(d)}" for d in ("gunicorn", "eventlet", "python-socketio",
                                      "python-engineio", "websocket-client", "requests")))
    print()
    print(f"Transports ({N_ECHOES} acked echoes each; PASS = all acks and the expected final "
          "transport; pass* = client fine, HTTP layer logged errors)")
    head = f"{'server':<22}{'port':<7}" + "".join(f"{t:<11}" for t in TESTS)
    print(head)
    print("-" * len(head))
    for name, row in results.items():
        print(f"{name:<22}{servers[name]:<7}"
              + "".join(f"{verdict(*row[t]):<11}" for t in TESTS))
    print()
    print("Limits and malformed requests (first line of the reply)")
    head = f"{'server':<22}" + "".join(f"{p:<36}" for p in LIMIT_PROBES)
    print(head)
    print("-" * len(head))
    for name, row in results.items():
        print(f"{name:<22}" + "".join(f"{row[p][:34]:<36}" for p in LIMIT_PROBES))
    print()
    print("Details (what the client saw | distinct server-side errors):")
    for name, row in results.items():
        for test in TESTS:
            outcome, errs = row[test]
            if outcome.get("ok") and not errs:
                continue
            distinct = list(dict.fromkeys(errs))
            print(f"  {name} / {test}: acks={outcome.get('acks')} "
                  f"transport={outcome.get('transport')} client={outcome.get('error')!r}")
            for err in distinct[:3]:
                print(f"      {len([e for e in errs if e == err])}x {err[:150]}")
    print()

    # ---------------- facts -----------------------------------------------
    workers = sorted(m.name for m in pkgutil.iter_modules(gunicorn.workers.__path__))
    print(f"gunicorn.workers modules:   {workers}")
    print(f"gunicorn SUPPORTED_WORKERS: {sorted(gunicorn.workers.SUPPORTED_WORKERS)}")
    with open(os.path.join(tmp, "access.log")) as f:
        access_lines = f.read().splitlines()
    print("access lines written by gunicorn.glogging.Logger (status counts):")
    for name, port in servers.items():
        mine = [ln for ln in access_lines if ln.endswith(f"port={port}")]
        statuses: dict[str, int] = {}
        for ln in mine:
            status = ln.split('" ', 1)[1].split()[0] if '" ' in ln else "?"
            statuses[status] = statuses.get(status, 0) + 1
        print(f"  {name:<22}{len(mine):>4} lines  {dict(sorted(statuses.items()))}")
    sample = next((ln for ln in access_lines if " 101 " in ln), "")
    print(f"  sample websocket line: {sample[:140]}")

    def code_lines(*objs) -> int:
        src = "".join(inspect.getsource(o) for o in objs)
        return len([ln for ln in src.splitlines()
                    if ln.strip() and not ln.strip().startswith(("#", '"""'))])

    print(f"code: gunicorn path {code_lines(gunicorn_serve)} non-blank lines (accept loop, "
          f"keep-alive, error replies, handled check, fd hold, the control switches); "
          f"eventlet.wsgi access-log adapter "
          f"{code_lines(LoggedResponse, EnvironRequest, access_log_adapter)} lines")
    sys.stdout.flush()
    shutil.rmtree(tmp, ignore_errors=True)
    # eventlet.wsgi.server waits for every open connection before returning;
    # nothing else needs cleaning up, so leave at once.
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--client":
        print(json.dumps(run_client(sys.argv[2], sys.argv[3])))
        sys.exit(0)
    sys.exit(server_main())
