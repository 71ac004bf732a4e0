"""Connections shared by the worker and the client: the queue Redis and the store."""

from __future__ import annotations

from typing import Any, TypeVar

from arq.connections import RedisSettings
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from store import StorageBackend, open_backend
from store.redis import EmbeddedRedis
from store.redis.connect import SentinelURL, connect, is_embedded, is_sentinel
from store.tasks import TaskStore
from worker.protocol.settings import Settings
from worker.protocol.writes import Stores

# A dropped connection or a restarted Redis must not end the worker: arq's poll
# loop lets a ConnectionError escape, so its commands retry with capped backoff
# (about a minute in all) while the server is away.
QUEUE_RETRY = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=60)
# A client rides out a Sentinel failover's few seconds (about 12 s in all) rather
# than fail the calls that meet it; against one server it fails fast.
FAILOVER_RETRY = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=15)
RETRIED = [ConnectionError, TimeoutError, OSError]
"""OSError too: a refused reconnect surfaces as one before redis-py wraps it."""

R = TypeVar("R", bound=Redis)


def queue_redis_settings(
    settings: Settings, *, ride_out_outages: bool = True
) -> tuple[RedisSettings, EmbeddedRedis | None]:
    """arq's connection settings for the queue URL, starting (or attaching to) the embedded server.

    The worker rides out outages (``QUEUE_RETRY``); a client passes False and
    fails fast instead, so its callers see the outage rather than a stall.
    For ``embedded`` this process holds the server until it returns the
    ``EmbeddedRedis`` given back with ``release()`` (or exits).
    """
    url = settings.queue_url
    server: EmbeddedRedis | None = None
    if is_embedded(url):
        server = EmbeddedRedis(settings.embedded_dir)
        server.acquire()
        redis_settings = RedisSettings(unix_socket_path=str(server.socket_path))
    elif is_sentinel(url):
        target = SentinelURL.parse(url)
        redis_settings = RedisSettings(
            host=list(target.sentinels),
            sentinel=True,
            sentinel_master=target.service,
            database=target.db,
            username=target.username,
            password=target.password,
            ssl=target.tls,
        )
    else:
        redis_settings = RedisSettings.from_dsn(url)
    for name, value in settings.tls_options(url).items():
        setattr(redis_settings, name, value)
    if ride_out_outages or is_sentinel(url):
        redis_settings.retry = QUEUE_RETRY if ride_out_outages else FAILOVER_RETRY
        redis_settings.retry_on_error = RETRIED
    if not ride_out_outages:
        redis_settings.conn_retries = 0
    return redis_settings, server


def queue_client(settings: Settings, redis_settings: RedisSettings, redis_class: type[R]) -> R:
    """A client of class ``redis_class`` (arq's pool, or the worker's) on the queue Redis,
    with the options arq's ``create_pool`` gives its own; on a Sentinel URL, a client of
    the primary that follows its failovers."""
    s = redis_settings
    options: dict[str, Any] = {
        "socket_connect_timeout": s.conn_timeout,
        "retry": s.retry,
        "retry_on_timeout": s.retry_on_timeout,
        "retry_on_error": s.retry_on_error,
        "max_connections": s.max_connections,
        "encoding": "utf8",
    }
    if s.sentinel or not isinstance(s.host, str):
        url = settings.queue_url
        return SentinelURL.parse(url).client(redis_class, **options, **settings.tls_options(url))
    return redis_class(
        host=s.host,
        port=s.port,
        unix_socket_path=s.unix_socket_path,
        db=s.database,
        username=s.username,
        password=s.password,
        ssl=s.ssl,
        ssl_keyfile=s.ssl_keyfile,
        ssl_certfile=s.ssl_certfile,
        ssl_cert_reqs=s.ssl_cert_reqs,
        ssl_ca_certs=s.ssl_ca_certs,
        ssl_ca_data=s.ssl_ca_data,
        ssl_check_hostname=s.ssl_check_hostname,
        **options,
    )


async def check_queue(settings: Settings) -> None:
    """Connect to the queue Redis once, so a wrong URL or password fails now, in one line.

    arq retries its own connection for seconds and ends in a traceback; this
    raises ``BackendError`` naming the URL with its password masked.
    """
    url = settings.queue_url
    connection = await connect(url, embedded_dir=settings.embedded_dir, **settings.tls_options(url))
    await connection.aclose()


async def open_stores(settings: Settings) -> Stores:
    url = settings.store_url_value
    backend: StorageBackend = await open_backend(
        url,
        prefix=settings.key_prefix,
        embedded_dir=settings.embedded_dir,
        sweep_batch=settings.sweep_batch,
        reap_batch=settings.reap_batch,
        durable_wait_ms=settings.replica_wait_ms,
        client_options=settings.tls_options(url),
    )
    return Stores(backend, TaskStore(backend, settings.store_config(), settings.security_config()))
