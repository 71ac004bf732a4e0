"""Connections shared by the worker and the client: the queue Redis and the store."""

from __future__ import annotations

from arq.connections import RedisSettings

from store import StorageBackend, open_backend
from store.redis import EmbeddedRedis
from store.redis.connect import connect, is_embedded
from store.tasks import TaskStore
from worker.operations import Stores
from worker.settings import Settings


def queue_redis_settings(settings: Settings) -> tuple[RedisSettings, EmbeddedRedis | None]:
    """arq's connection settings for the queue URL, starting the embedded server if named.

    The server is returned only when this call started it, for the caller to stop.
    """
    url = settings.queue_url
    if is_embedded(url):
        server = EmbeddedRedis(settings.embedded_dir)
        server.start()
        socket = RedisSettings(unix_socket_path=str(server.socket_path))
        return socket, server if server.owned else None
    return RedisSettings.from_dsn(url), None


async def check_queue(settings: Settings) -> None:
    """Connect to the queue Redis once, so a wrong URL or password fails now, in one line.

    arq retries its own connection for seconds and ends in a traceback; this
    raises ``BackendError`` naming the URL with its password masked.
    """
    connection = await connect(settings.queue_url, embedded_dir=settings.embedded_dir)
    await connection.aclose()


async def open_stores(settings: Settings) -> Stores:
    backend: StorageBackend = await open_backend(
        settings.store_url_value,
        prefix=settings.key_prefix,
        embedded_dir=settings.embedded_dir,
        sweep_batch=settings.sweep_batch,
        reap_batch=settings.reap_batch,
    )
    return Stores(backend, TaskStore(backend, settings.store_config(), settings.security_config()))
