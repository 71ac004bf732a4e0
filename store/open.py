"""Pick a backend by URL scheme: ``memory://`` or any Redis URL ``RedisBackend`` takes."""

from __future__ import annotations

import os
from typing import Any

from store.backend import StorageBackend
from store.memory import InMemoryBackend
from store.redis import RedisBackend

MEMORY = "memory://"


async def open_backend(
    url: str,
    *,
    prefix: str = "ts",
    embedded_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> StorageBackend:
    """A connected backend; ``memory://`` lives in this process only (tests, demos)."""
    if url == MEMORY or url.startswith(MEMORY):
        return InMemoryBackend()
    return await RedisBackend.from_url(url, prefix=prefix, embedded_dir=embedded_dir, **options)
