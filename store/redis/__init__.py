"""The Redis backend: Lua scripts on Redis or Redis Cluster, and an embedded server."""

from store.redis.backend import RedisBackend
from store.redis.connect import connect, mask_url
from store.redis.embedded import EmbeddedRedis

__all__ = ["EmbeddedRedis", "RedisBackend", "connect", "mask_url"]
