"""A Redis Sentinel group of a test's own: a master, a replica and three sentinels, each a
real ``redis-server`` (``--sentinel`` for the sentinels) on a free 127.0.0.1 port, with a
short ``down-after-milliseconds`` so a killed master is replaced within seconds.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.support.clients import free_port, wait_until

SERVICE = "sioctltest"
# How long the group may take to form (replica synced, sentinels aware of one another).
FORM_TIMEOUT = 20.0
# How long a failover may take once the master is killed (down-after + election + promotion).
FAILOVER_TIMEOUT = 30.0


class SentinelGroup:
    """Started on construction; :meth:`stop` (idempotent) ends every process it started."""

    def __init__(self, directory: Path, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 3000, password: str | None = None,
                 sentinel_password: str | None = None) -> None:
        """``password``: the master's and the replica's ``requirepass`` (the sentinels know
        it); ``sentinel_password``: the sentinels' own (they ask it of clients and of one
        another; the URL gives it as ``?sentinel_password=``)."""
        self.directory = directory
        self.password = password
        self.sentinel_password = sentinel_password
        directory.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        try:
            self._start("master", self._server_args(self.master_port))
            self._start("replica", self._server_args(self.replica_port) + [
                "--replicaof", "127.0.0.1", str(self.master_port)])
            for port in self.sentinel_ports:
                self._start_sentinel(port, down_after_ms, failover_timeout_ms)
            self._wait_formed()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """``redis+sentinel://`` URL of the group, database 0, service SERVICE."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        auth = f":{self.password}@" if self.password else ""
        query = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"redis+sentinel://{auth}{hosts}/0/{SERVICE}{query}"

    def _server_args(self, port: int) -> list[str]:
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.directory)]
        if self.password:
            # The replica authenticates to the master, and to the replica once it is master.
            args += ["--requirepass", self.password, "--masterauth", self.password]
        return args

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.directory / f"{name}.log", "wb")  # noqa: SIM115 - the process owns it
        try:
            self.processes[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                                    cwd=self.directory)
        finally:
            log.close()

    def _start_sentinel(self, port: int, down_after_ms: int, failover_timeout_ms: int) -> None:
        # A sentinel rewrites its configuration file: one file each.
        config = self.directory / f"sentinel-{port}.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
            + (f"sentinel auth-pass {SERVICE} {self.password}\n" if self.password else "")
            + (f"requirepass {self.sentinel_password}\nsentinel sentinel-pass "
               f"{self.sentinel_password}\n" if self.sentinel_password else "")
        )
        self._start(f"sentinel-{port}", ["redis-server", str(config), "--sentinel"])

    def client(self, port: int) -> redis.Redis:
        """A client of the server or sentinel on ``port``, quick to give up."""
        password = self.sentinel_password if port in self.sentinel_ports else self.password
        return redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=2,
                           socket_connect_timeout=2)

    def _wait_formed(self) -> None:
        def replica_synced() -> bool:
            try:
                info = self.client(self.replica_port).info("replication")
            except redis.RedisError:
                return False
            return info.get("master_link_status") == "up"

        def sentinels_agree() -> bool:
            for port in self.sentinel_ports:
                try:
                    sentinel = self.client(port)
                    replicas = sentinel.sentinel_slaves(SERVICE)
                    others = sentinel.sentinel_sentinels(SERVICE)
                except redis.RedisError:
                    return False
                if len(replicas) != 1 or len(others) != 2:
                    return False
            return True

        wait_until(replica_synced, FORM_TIMEOUT, what="the replica in sync with the master")
        wait_until(sentinels_agree, FORM_TIMEOUT,
                   what="every sentinel aware of the replica and of the two others")

    def master_port_now(self) -> int | None:
        """The master's port as the first sentinel that answers names it."""
        for port in self.sentinel_ports:
            try:
                address = self.client(port).sentinel_get_master_addr_by_name(SERVICE)
            except redis.RedisError:
                continue
            if address:
                return int(address[1])
        return None

    def kill_master(self) -> float:
        """SIGKILL the master; returns the monotonic time it died."""
        process = self.processes.pop("master")
        process.send_signal(signal.SIGKILL)
        process.wait(5)
        return time.monotonic()

    def wait_failover(self, timeout: float = FAILOVER_TIMEOUT) -> float:
        """Wait until the sentinels name the replica as master; returns the monotonic time."""
        wait_until(lambda: self.master_port_now() == self.replica_port, timeout, interval=0.05,
                   what="the sentinels promoting the replica")
        return time.monotonic()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()
