"""Open a redis-py asyncio client from a URL, the embedded server included.

Schemes: ``redis://``, ``rediss://`` (TLS), ``unix://``, ``redis+cluster://``
and ``rediss+cluster://`` (Redis Cluster), and ``embedded`` (a private server
started on first use; see ``store.redis.embedded``).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import RedisClusterException, RedisError

from store.errors import BackendError, InvalidArgument
from store.redis.embedded import EmbeddedRedis

RedisClient = Redis | RedisCluster
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
EMBEDDED = "embedded"


def default_embedded_dir() -> Path:
    """``TASKSTORE_EMBEDDED_DIR``, else ``$XDG_DATA_HOME/taskstore`` (``~/.local/share``)."""
    named = os.environ.get("TASKSTORE_EMBEDDED_DIR")
    if named:
        return Path(named)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "taskstore"


def mask_url(url: str) -> str:
    """The URL with its password replaced, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


def is_tls(url: str) -> bool:
    return urlsplit(url).scheme in ("rediss", "rediss+cluster")


def is_embedded(url: str) -> bool:
    return url == EMBEDDED or url.startswith(f"{EMBEDDED}:")


class Seeds(dict[str, ClusterNode]):
    """A cluster client's startup nodes that never run dry.

    redis-py before 7.2 (arq pins it below 6) drops a node from its startup
    nodes on every connection error and then closes every connection, which
    fails the commands in flight on the other nodes too; under load, a single
    failover can drop them all, and the client then refuses every command for
    good ("Redis Cluster cannot be connected"). When the last one goes, every
    node ever seen comes back, and rediscovery skips the dead ones.
    """

    def __init__(self, nodes: dict[str, ClusterNode]) -> None:
        super().__init__(nodes)
        self._seen = dict(nodes)

    def __setitem__(self, name: str, node: ClusterNode) -> None:
        super().__setitem__(name, node)
        self._seen[name] = node

    def pop(self, name: str, *default: Any) -> Any:
        node = super().pop(name, *default)
        if not self:
            self.update(self._seen)
        return node


@dataclass
class Connection:
    """A connected client and, for ``embedded``, the server behind it."""

    client: RedisClient
    server: EmbeddedRedis | None

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        finally:
            if self.server is not None:
                await asyncio.to_thread(self.server.release)


async def connect(
    url: str, *, embedded_dir: str | os.PathLike[str] | None = None, **options: Any
) -> Connection:
    """Connect and PING, so a wrong URL or password fails here, with the password masked."""
    server: EmbeddedRedis | None = None
    scheme = urlsplit(url).scheme
    try:
        if is_embedded(url):
            server = EmbeddedRedis(embedded_dir or default_embedded_dir())
            await asyncio.to_thread(server.acquire)
            client: RedisClient = Redis.from_url(server.url, **options)
        elif scheme in CLUSTER_SCHEMES:
            plain = urlunsplit(urlsplit(url)._replace(scheme=CLUSTER_SCHEMES[scheme]))
            cluster = RedisCluster.from_url(plain, **options)
            cluster.nodes_manager.startup_nodes = Seeds(cluster.nodes_manager.startup_nodes)
            client = cluster
        elif scheme in ("redis", "rediss", "unix"):
            client = Redis.from_url(url, **options)
        else:
            raise InvalidArgument(f"unsupported Redis URL scheme {scheme!r} in {mask_url(url)}")
        await client.initialize() if isinstance(client, RedisCluster) else await client.ping()
    except (RedisError, RedisClusterException, OSError, ValueError) as exc:
        if server is not None:
            await asyncio.to_thread(server.release)
        if isinstance(exc, InvalidArgument):
            raise
        raise BackendError(
            None, f"cannot connect to {mask_url(url)}: {type(exc).__name__}"
        ) from exc
    return Connection(client, server)
