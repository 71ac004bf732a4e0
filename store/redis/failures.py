"""redis-py's errors as the contract's ``BackendError``."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from store.errors import BackendError


class backend_errors:
    """Turn redis-py errors into ``BackendError`` naming the key, keeping the cause.

    A class rather than ``@contextmanager``: it runs on every call, and this is cheaper.
    """

    __slots__ = ("key",)

    def __init__(self, key: str | None) -> None:
        self.key = key

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is not None and isinstance(exc, RedisError | RedisClusterException):
            raise BackendError(self.key, f"Redis failed: {type(exc).__name__}: {exc}") from exc
