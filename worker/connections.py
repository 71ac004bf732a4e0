"""Connections shared by the worker and the client: the queue Redis and the store."""

from __future__ import annotations

from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from store import StorageBackend, open_backend
from store.redis import EmbeddedRedis
from store.redis.connect import connect, is_embedded
from store.tasks import TaskStore
from worker.settings import Settings
from worker.writes import Stores

# A dropped connection or a restarted Redis must not end the worker: arq's poll
# loop lets a ConnectionError escape, so its commands retry with capped backoff
# (about a minute in all) while the server is away.
QUEUE_RETRY = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=60)


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
    else:
        redis_settings = RedisSettings.from_dsn(url)
        for name, value in settings.tls_options(url).items():
            setattr(redis_settings, name, value)
    if ride_out_outages:
        redis_settings.retry = QUEUE_RETRY
        # OSError too: a refused reconnect surfaces as one before redis-py wraps it.
        redis_settings.retry_on_error = [ConnectionError, TimeoutError, OSError]
    else:
        redis_settings.conn_retries = 0
    return redis_settings, server


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
