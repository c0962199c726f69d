"""The four systems the suite compares, each started on a free 127.0.0.1 port and stopped again.

- ``python-socketio``: one plain python-socketio process on eventlet (tests/bench/pyserve.py);
- ``nginx``: Debian's nginx with ``hash $remote_addr consistent`` over N pyserve processes that
  share python-socketio's stock RedisManager;
- ``node``: the Node.js Socket.IO v4 cluster (tests/bench/node/server.js: node ``cluster``,
  @socket.io/sticky, @socket.io/cluster-adapter);
- ``sioctl``: ``python -m sioctl start`` with N workers (Redis when N > 1, as sioctl defaults).

A system is a context manager: entering starts it and returns once every worker serves; leaving
stops every process it started (SIGTERM, then SIGKILL of the whole process tree).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from procstat import descendants

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parents[1]
NODE_DIR = BENCH_DIR / "node"
BOOT_TIMEOUT = 40.0
STOP_TIMEOUT = 10.0
# Every system may hold this many connections per process: the idle scenario opens 10k.
MAX_CONNECTIONS = 20000
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SYSTEMS = ("python-socketio", "nginx", "node", "sioctl", "uvicorn", "sioctl-asyncio")
LABELS = {
    "python-socketio": "python-socketio (1 process)",
    "nginx": "nginx hash + python-socketio",
    "node": "Node.js cluster",
    "sioctl": "sioctl",
    "uvicorn": "uvicorn + AsyncServer (1 process)",
    "sioctl-asyncio": "sioctl asyncio",
}


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class System:
    """A running system: ``port`` to connect to, ``roles()`` to find its processes."""

    name = ""

    def __init__(self, workers: int, redis_url: str | None, redis_pid: int | None,
                 log_dir: Path) -> None:
        self.workers = workers
        self.redis_url = redis_url
        self.redis_pid = redis_pid
        self.port = free_port()
        self.log_dir = log_dir
        self.work = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-", dir=log_dir))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.uses_redis = False
        # PSS of the server processes when the first idle phase began (still fresh).
        self.baseline_kib: int | None = None

    @property
    def label(self) -> str:
        return f"{LABELS[self.name]}, {self.workers} worker{'s' if self.workers > 1 else ''}"

    # -------------------------------------------------------------------------- life

    def __enter__(self) -> System:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def _spawn(self, argv: list[str], log_name: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a session of its own, its output going to a log file."""
        with open(self.work / log_name, "ab") as log:
            proc = subprocess.Popen(argv, cwd=kwargs.pop("cwd", REPO_ROOT),
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def _wait(self, ready: Any, what: str) -> None:
        """Wait until ``ready()`` is true; raise with the logs' tail if it never is."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.label}: {what} did not become ready:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of every log of this system."""
        out = []
        for path in sorted(self.work.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self) -> None:
        """Stop every process started, and everything they started; never raises."""
        tree: list[int] = []
        for proc in self.procs:
            tree += descendants(proc.pid)
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left (a worker that ignored the master's stop, a stuck proc): kill it.
        for pid in tree:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.procs.clear()

    # ------------------------------------------------------------------------- roles

    def roles(self) -> dict[str, list[int]]:
        """The server-side processes by role: 'front' (what owns the client port when that is
        not a worker), 'workers', 'redis' (when the system uses it)."""
        raise NotImplementedError

    def _redis_role(self) -> dict[str, list[int]]:
        return {"redis": [self.redis_pid]} if self.uses_redis and self.redis_pid else {}


class PythonSocketIO(System):
    """One plain python-socketio process on eventlet, in-memory manager."""

    name = "python-socketio"

    def start(self) -> None:
        self._spawn([sys.executable, str(BENCH_DIR / "pyserve.py"), str(self.port),
                     "--max-size", str(MAX_CONNECTIONS)], "pyserve.log")
        self._wait(lambda: port_open(self.port), "the process")

    def roles(self) -> dict[str, list[int]]:
        return {"workers": [p.pid for p in self.procs]}


class NginxScaleOut(System):
    """nginx ``hash $remote_addr consistent`` over N pyserve processes on a RedisManager."""

    name = "nginx"

    def start(self) -> None:
        if not self.redis_url:
            raise RuntimeError("the nginx system needs Redis")
        self.uses_redis = True
        self.backends = [free_port() for _ in range(self.workers)]
        self.python: list[subprocess.Popen[bytes]] = []
        for i, port in enumerate(self.backends):
            self.python.append(self._spawn(
                [sys.executable, str(BENCH_DIR / "pyserve.py"), str(port), "--redis",
                 self.redis_url, "--max-size", str(MAX_CONNECTIONS)],
                f"pyserve-{i}.log", env={**os.environ, "BENCH_SLOT": str(i)}))
        self._wait(lambda: all(port_open(p) for p in self.backends), "the python processes")
        conf = self.work / "nginx.conf"
        conf.write_text(self.config())
        self.nginx = self._spawn([NGINX, "-p", str(self.work), "-c", str(conf),
                                  "-e", str(self.work / "error.log"), "-g", "daemon off;"],
                                 "nginx.log")
        self._wait(lambda: port_open(self.port), "nginx")

    def config(self) -> str:
        """nginx.conf: the documented websocket proxying, hashed on the client address."""
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in self.backends)
        temp = self.work / "temp"
        temp.mkdir(exist_ok=True)
        # As root, nginx would run its workers as nobody, who cannot enter the 0700 temp dir.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        return f"""{user}worker_processes auto;
pid {self.work}/nginx.pid;
worker_rlimit_nofile {MAX_CONNECTIONS * 2 + 100};
events {{ worker_connections {MAX_CONNECTIONS * 2}; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream socketio {{
        hash $remote_addr consistent;
{servers}
    }}
    server {{
        listen 127.0.0.1:{self.port} backlog=2048;
        location / {{
            proxy_pass http://socketio;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
            proxy_buffering off;
        }}
    }}
}}
"""

    def roles(self) -> dict[str, list[int]]:
        return {"front": descendants(self.nginx.pid),
                "workers": [p.pid for p in self.python], **self._redis_role()}


class NodeCluster(System):
    """node server.js PORT N: a cluster primary with N workers."""

    name = "node"

    def start(self) -> None:
        if not (NODE_DIR / "node_modules").is_dir():
            raise RuntimeError(f"run `npm ci --prefix {NODE_DIR}` first (make bench does)")
        self.primary = self._spawn(["node", str(NODE_DIR / "server.js"), str(self.port),
                                    str(self.workers)], "node.log")
        self._wait(lambda: port_open(self.port), "the primary")

    def roles(self) -> dict[str, list[int]]:
        tree = descendants(self.primary.pid)
        return {"front": [self.primary.pid], "workers": [p for p in tree if p != self.primary.pid]}


class Uvicorn(System):
    """One uvicorn process serving the AsyncServer app (what FastAPI users run today: uvicorn's
    --workers has no sticky sessions, so one process), in-memory manager."""

    name = "uvicorn"

    def start(self) -> None:
        self._spawn([sys.executable, "-m", "uvicorn", "tests.bench.apps.bench_async_app:app",
                     "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
                     "--backlog", "2048", "--no-access-log"], "uvicorn.log")
        self._wait(lambda: port_open(self.port), "the process")

    def roles(self) -> dict[str, list[int]]:
        return {"workers": [p.pid for p in self.procs]}


class Sioctl(System):
    """python -m sioctl start with N workers; Redis joins them when N > 1."""

    name = "sioctl"
    log_level = "warning"
    app = "tests.bench.apps.bench_app:sio"

    def start(self) -> None:
        from sioctl.cluster.control import ControlError, request

        title = f"bench{self.port}"
        run_dir = tempfile.mkdtemp(prefix="siob")  # short: a Unix socket path is ≤ 107 bytes
        self.run_dir = run_dir
        argv = [sys.executable, "-m", "sioctl", "start", self.app,
                "-w", str(self.workers), "-b", f"127.0.0.1:{self.port}", "--run-dir", run_dir,
                "--title", title, "--worker-connections", str(MAX_CONNECTIONS),
                "--graceful-timeout", "3", "--log-level", self.log_level]
        if self.workers > 1 and self.redis_url:
            self.uses_redis = True
            argv += ["--redis", self.redis_url]
        self.master = self._spawn(argv, "sioctl.log")
        control = os.path.join(run_dir, title, "control.sock")

        def ready() -> bool:
            try:
                status = request(control, {"cmd": "status"}, timeout=2.0)
            except (ControlError, OSError):
                return False
            slots = status.get("slots", [])
            return (status.get("state") == "running" and len(slots) == self.workers
                    and all(s.get("state") == "ready" for s in slots))

        self._wait(ready, "the cluster")

    def stop(self) -> None:
        super().stop()
        if getattr(self, "run_dir", None):
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def roles(self) -> dict[str, list[int]]:
        tree = descendants(self.master.pid)
        return {"front": [self.master.pid],
                "workers": [p for p in tree if p != self.master.pid], **self._redis_role()}


class SioctlAsyncio(Sioctl):
    """sioctl's asyncio engine on the AsyncServer twin of the bench app (sioctl's asyncio
    Redis manager joins the workers when N > 1)."""

    name = "sioctl-asyncio"
    app = "tests.bench.apps.bench_async_app:app"


CLASSES: dict[str, type[System]] = {
    cls.name: cls
    for cls in (PythonSocketIO, NginxScaleOut, NodeCluster, Sioctl, Uvicorn, SioctlAsyncio)
}


def make(name: str, workers: int, redis_url: str | None, redis_pid: int | None,
         log_dir: Path) -> System:
    """An unstarted system ``name`` with ``workers`` workers (enter it to start it)."""
    return CLASSES[name](workers, redis_url, redis_pid, log_dir)
