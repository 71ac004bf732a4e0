"""Run CAS increments from a separate process: ``python -m tests.redis.increment``."""

from __future__ import annotations

import argparse
import asyncio

from store.redis import RedisBackend
from tests.harness import cas_increment


async def run(
    url: str, prefix: str, key: str, workers: int, each: int, directory: str | None
) -> None:
    async with await RedisBackend.from_url(url, prefix=prefix, embedded_dir=directory) as backend:

        async def worker() -> None:
            for _ in range(each):
                await cas_increment(backend, key)

        await asyncio.gather(*(worker() for _ in range(workers)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("url", "prefix", "key", "workers", "each", "directory"):
        parser.add_argument(name)
    a = parser.parse_args()
    asyncio.run(run(a.url, a.prefix, a.key, int(a.workers), int(a.each), a.directory or None))
