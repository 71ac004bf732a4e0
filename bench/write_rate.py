"""Direct write rate of RedisBackend: ``python -m bench.write_rate [URL]``.

Measures put and put_if_version with 1 KiB records from one process at
concurrency 1 and 64, each for a fixed number of operations.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

from store import make_key
from store.redis import RedisBackend

PAYLOAD = b"x" * 1024


async def rate(backend: RedisBackend, op: str, concurrency: int, total: int) -> float:
    owner = f"bench-{uuid.uuid4().hex[:8]}"
    keys = [make_key(owner, f"t{i}") for i in range(concurrency)]
    versions = {k: await backend.put(k, PAYLOAD) for k in keys}

    async def worker(key: str) -> None:
        for _ in range(total // concurrency):
            if op == "put":
                await backend.put(key, PAYLOAD)
            else:
                versions[key] = await backend.put_if_version(key, PAYLOAD, versions[key])

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in keys))
    elapsed = time.perf_counter() - start
    for key in keys:
        await backend.delete(key)
    return (total // concurrency) * concurrency / elapsed


async def main(url: str) -> None:
    async with await RedisBackend.from_url(url, prefix="bench") as backend:
        for op in ("put", "put_if_version"):
            for concurrency in (1, 64):
                ops = await rate(backend, op, concurrency, 20_000)
                print(f"{op:15} concurrency {concurrency:3}: {ops:8.0f} ops/s")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"))
