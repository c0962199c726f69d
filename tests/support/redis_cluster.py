"""A Redis Cluster of a test's own: three masters (``cluster-enabled yes``), each a real
``redis-server`` on a free 127.0.0.1 port, joined by ``redis-cli --cluster create`` (no
replicas), for the ``redis+cluster://`` tests (sharded pub/sub, tests/e2e/test_redis_cluster.py);
:meth:`RedisClusterGroup.move_slot` reshards one slot (its keys migrated) to another master.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from tests.support.clients import free_port, wait_until

# How long the three masters may take to agree that every slot is served.
FORM_TIMEOUT = 30.0


class RedisClusterGroup:
    """Started on construction; :meth:`stop` (idempotent) ends every process it started."""

    def __init__(self, directory: Path, masters: int = 3, replicas: int = 0) -> None:
        """``replicas``: per master (``redis-cli --cluster create --cluster-replicas``); the
        masters are the first ``masters`` ports."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.ports = [free_port() for _ in range(masters * (1 + replicas))]
        self.processes: list[subprocess.Popen[bytes]] = []
        try:
            for port in self.ports:
                self._start(port)
            wait_until(lambda: all(self._answers(port) for port in self.ports), FORM_TIMEOUT,
                       what="every cluster node to answer")
            subprocess.run(
                ["redis-cli", "--cluster", "create",
                 *(f"127.0.0.1:{port}" for port in self.ports),
                 "--cluster-replicas", str(replicas), "--cluster-yes"],
                check=True, capture_output=True, timeout=FORM_TIMEOUT)
            wait_until(self._formed, FORM_TIMEOUT, what="cluster_state:ok on every node")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """``redis+cluster://`` URL naming every node (the syntax issue 20 asks for)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def _start(self, port: int) -> None:
        node = self.directory / str(port)
        node.mkdir()
        with open(node / "redis.log", "wb") as log:
            self.processes.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
                 # A free bus port of its own: the default, port + 10000, may be taken.
                 "--cluster-port", str(free_port()),
                 "--dir", str(node)],
                stdout=log, stderr=subprocess.STDOUT, cwd=node))

    def client(self, port: int) -> redis.Redis:
        """A plain (not cluster-aware) client of the node on ``port``."""
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2,
                           socket_connect_timeout=2)

    def _answers(self, port: int) -> bool:
        try:
            return bool(self.client(port).ping())
        except redis.RedisError:
            return False

    def _formed(self) -> bool:
        try:
            return all(self.client(port).cluster("info")["cluster_state"] == "ok"
                       for port in self.ports) and all(
                self.client(port).info("replication").get("master_link_status", "up") == "up"
                for port in self.ports)
        except (redis.RedisError, KeyError, TypeError):
            return False

    def node_id(self, port: int) -> str:
        return str(self.client(port).execute_command("CLUSTER MYID").decode())

    def port_of_slot(self, slot: int, ask: int | None = None) -> int:
        """The port of the master serving ``slot`` (as the node on port ``ask``, by default
        the first, sees it)."""
        for first, last, master, *_ in self.client(ask or self.ports[0]).execute_command(
                "CLUSTER SLOTS"):
            if first <= slot <= last:
                return int(master[1])
        raise LookupError(f"slot {slot} is not served")

    def keyslot(self, name: str) -> int:
        return int(self.client(self.ports[0]).execute_command("CLUSTER KEYSLOT", name))

    def shard_channels(self, port: int) -> set[str]:
        """The shard channels with subscribers on the node on ``port``."""
        return {c.decode() for c in
                self.client(port).execute_command("PUBSUB SHARDCHANNELS")}

    def move_slot(self, slot: int, to_port: int) -> None:
        """Reshard ``slot`` to the master on ``to_port`` as ``redis-cli --cluster reshard``
        does: IMPORTING/MIGRATING, its keys MIGRATEd, then SETSLOT NODE on every master."""
        from_port = self.port_of_slot(slot)
        source, target = self.client(from_port), self.client(to_port)
        target_id = self.node_id(to_port)
        target.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", self.node_id(from_port))
        source.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        while keys := source.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            source.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 5000, "KEYS",
                                   *keys)
        for port in [to_port, from_port] + [p for p in self.ports
                                            if p not in (to_port, from_port)]:
            self.client(port).execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        wait_until(lambda: all(self._serves(port, slot, to_port) for port in self.ports),
                   FORM_TIMEOUT, what=f"every node to see slot {slot} on {to_port}")

    def _serves(self, port: int, slot: int, to_port: int) -> bool:
        for first, last, master, *_ in self.client(port).execute_command("CLUSTER SLOTS"):
            if first <= slot <= last:
                return int(master[1]) == to_port
        return False

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``."""
        process = self.processes[self.ports.index(port)]
        process.kill()
        process.wait(5)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()
