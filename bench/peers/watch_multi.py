"""Peer of CAS under contention: the classic WATCH / MULTI / EXEC increment."""

from __future__ import annotations

from typing import Any

from redis.exceptions import WatchError


async def increment(client: Any, key: str) -> int:
    """Add one to the counter at ``key``; return how many retries it took."""
    retries = 0
    async with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                value = int(await pipe.hget(key, "n") or 0)
                pipe.multi()
                pipe.hset(key, "n", value + 1)
                await pipe.execute()
                return retries
            except WatchError:
                retries += 1
