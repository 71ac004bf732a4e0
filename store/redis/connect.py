"""Open a redis-py asyncio client from a URL, the embedded server included.

Schemes: ``redis://``, ``rediss://`` (TLS), ``unix://``, ``redis+cluster://``
and ``rediss+cluster://`` (Redis Cluster), ``redis+sentinel://`` and
``rediss+sentinel://`` (a primary that Redis Sentinel fails over; see
``SentinelURL``), and ``embedded`` (a private server started on first use; see
``store.redis.embedded``).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from store.errors import BackendError, InvalidArgument
from store.redis.embedded import EmbeddedRedis

RedisClient = Redis | RedisCluster
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT = 26379
EMBEDDED = "embedded"
R = TypeVar("R", bound=Redis)


def default_embedded_dir() -> Path:
    """``TASKSTORE_EMBEDDED_DIR``, else ``$XDG_DATA_HOME/taskstore`` (``~/.local/share``)."""
    named = os.environ.get("TASKSTORE_EMBEDDED_DIR")
    if named:
        return Path(named)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "taskstore"


def mask_url(url: str) -> str:
    """The URL with its passwords replaced, fit for logs and error messages."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        parts = parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hosts}")
    if "sentinel_password=" in parts.query:
        query = "&".join(
            "sentinel_password=***" if pair.startswith("sentinel_password=") else pair
            for pair in parts.query.split("&")
        )
        parts = parts._replace(query=query)
    return urlunsplit(parts)


def is_tls(url: str) -> bool:
    return urlsplit(url).scheme in ("rediss", "rediss+cluster", "rediss+sentinel")


def is_sentinel(url: str) -> bool:
    return urlsplit(url).scheme in SENTINEL_SCHEMES


@dataclass(frozen=True, slots=True)
class SentinelURL:
    """A primary that Redis Sentinel watches and fails over, named by URL.

    ``redis+sentinel://[user:password@]host[:port][,host[:port]...]/service[/db]``,
    the form RedisVL, Prefect and docket read: the sentinels (port 26379 unless
    given), the service (Sentinel's master name) and the database. The user and
    password log in to the primary; ``?sentinel_username=...&sentinel_password=...``
    to the sentinels, when they ask. ``rediss+sentinel`` is TLS to both.
    """

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    sentinel_username: str | None
    sentinel_password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> SentinelURL:
        """``InvalidArgument`` naming the URL (password masked) when it is no such URL."""
        parts = urlsplit(url)
        userinfo, at, hosts = parts.netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        path = [p for p in parts.path.split("/") if p]
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(options) - {"sentinel_username", "sentinel_password"}
        try:
            sentinels = tuple(_host_port(h) for h in hosts.split(","))
            if parts.scheme not in SENTINEL_SCHEMES or not 1 <= len(path) <= 2 or unknown:
                raise ValueError
            db = int(path[1]) if len(path) == 2 else 0
        except ValueError:
            raise InvalidArgument(
                f"a Sentinel URL is redis+sentinel://[user:password@]host[:port][,host[:port]...]"
                f"/service[/db][?sentinel_username=&sentinel_password=], not {mask_url(url)}"
            ) from None
        return cls(
            sentinels,
            unquote(path[0]),
            db,
            unquote(user) if at and user else None,
            unquote(password) if at and colon else None,
            options.get("sentinel_username"),
            options.get("sentinel_password"),
            parts.scheme == "rediss+sentinel",
        )

    def client(self, redis_class: type[R] = Redis, **options: Any) -> R:  # type: ignore[assignment]
        """A client of the service's primary. redis-py asks the sentinels where it is on
        each new connection, and drops connections that meet a demoted primary, so the
        client follows a failover; ``options`` go to the primary's connections (TLS
        files to the sentinels' too)."""
        tls = {"ssl": True, **{k: v for k, v in options.items() if k.startswith("ssl_")}}
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(self.sentinels),
            sentinel_kwargs={
                "username": self.sentinel_username,
                "password": self.sentinel_password,
                "socket_connect_timeout": options.get("socket_connect_timeout", 5),
                "socket_timeout": 5,
                **(tls if self.tls else {}),
            },
            db=self.db,
            username=self.username,
            password=self.password,
            connection_class=FollowingSSLConnection if self.tls else FollowingConnection,
            **options,
        )
        client: R = sentinel.master_for(self.service, redis_class=redis_class)
        return client


class FollowingConnection(SentinelManagedConnection):
    """A connection to a Sentinel-managed primary that asks the sentinels on every try.

    redis-py (5.x) retries each connection attempt at the address the sentinels
    gave first, under the connection's own retry policy; a policy long enough
    to ride out a restart (the worker's) then knocks at a dead primary for a
    minute while a replica has long taken over. Here one try goes to an
    address, and the policy's next try asks the sentinels again.
    """

    async def connect_to(self, address: tuple[str, int]) -> None:
        retry, self.retry = self.retry, Retry(NoBackoff(), 0)
        try:
            await super().connect_to(address)  # type: ignore[no-untyped-call]
        finally:
            self.retry = retry


class FollowingSSLConnection(FollowingConnection, SSLConnection):
    pass


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":")
    if not colon:
        host, port = port, str(SENTINEL_PORT)
    if not host or not port.isdigit():
        raise ValueError(text)
    return host, int(port)


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
        elif scheme in SENTINEL_SCHEMES:
            client = SentinelURL.parse(url).client(Redis, **options)
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
