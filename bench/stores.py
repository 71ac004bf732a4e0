"""Scenarios 5, 6 and 7: listing, sweeping and memory, which depend on the store's size."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

from bench.harness import Bench, Result
from store import BatchOp, make_key
from store.redis import RedisBackend


async def fill(backend: RedisBackend, ops: list[BatchOp], chunk: int = 1000) -> None:
    """Write ``ops`` through the store, pipelined, a few chunks at a time."""
    chunks = [ops[i : i + chunk] for i in range(0, len(ops), chunk)]
    for start in range(0, len(chunks), 4):
        await asyncio.gather(*(backend.apply_batch(c) for c in chunks[start : start + 4]))


async def listing(bench: Bench) -> list[Result]:
    sizes = [100, 10_000, bench.size(20_000, 100_000)]
    ours_ms: dict[int, float] = {}
    peer_ms: dict[int, float] = {}
    async with await RedisBackend.from_url(bench.url, prefix="bench") as backend:
        client: Any = backend.client
        for size in sizes:
            owner = uuid.uuid4().hex[:8]
            await fill(
                backend, [BatchOp(make_key(owner, f"t{i:07}"), b"x" * 100) for i in range(size)]
            )
            ours_ms[size] = await _median_ms(
                lambda o=owner: backend.list_page(o, limit=50), bench.rounds * 4
            )
            peer_ms[size] = await _median_ms(
                lambda o=owner: _seed_listing(backend, o),
                bench.rounds if size > 10_000 else bench.rounds * 4,
            )
        await client.flushdb()
    big, small = ours_ms[sizes[-1]], ours_ms[sizes[0]]
    return [
        Result(
            f"5. list_page(limit=50) at {sizes[-1]:,} vs at 100 records",
            big,
            small,
            "ms",
            "ratio <= 1.5",
            big / small <= 1.5,
            {"ours_ms": ours_ms, "seed_ms": peer_ms},
        )
    ]


async def _seed_listing(backend: RedisBackend, owner: str) -> None:
    """The seed design's listing: the whole index, then every record's hash."""
    client: Any = backend.client
    keys = backend.keys.owner(owner)
    tasks = await client.zrange(keys.index, 0, -1)
    async with client.pipeline(transaction=False) as pipe:
        for task in tasks:
            pipe.hgetall(keys.record(task.decode()))
        await pipe.execute()


async def _median_ms(call: Any, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def sweep(bench: Bench) -> list[Result]:
    expired = bench.size(2_000, 10_000)
    stores = [bench.size(4_000, 20_000), bench.size(40_000, 1_000_000)]
    seconds: dict[int, list[float]] = {size: [] for size in stores}
    async with await RedisBackend.from_url(bench.url, prefix="bench") as backend:
        client: Any = backend.client
        for size in stores:
            await client.flushdb()
            owners = [uuid.uuid4().hex[:8] for _ in range(1000)]
            await fill(
                backend,
                [
                    BatchOp(make_key(owners[i % 1000], f"k{i}"), b"x" * 100)
                    for i in range(size - expired)
                ],
            )
            for _ in range(bench.size(1, bench.rounds // 2)):
                now = int((await client.time())[0]) * 1000
                await fill(
                    backend,
                    [
                        BatchOp(make_key(owners[i % 1000], f"d{i}"), b"x", expires_at_ms=now + 1500)
                        for i in range(expired)
                    ],
                )
                await asyncio.sleep(2)
                started = time.perf_counter()
                removed = await backend.cleanup_expired()
                seconds[size].append(time.perf_counter() - started)
                assert removed == expired, (removed, expired)
        await client.flushdb()
    small, big = (statistics.median(seconds[s]) for s in stores)
    return [
        Result(
            f"6. cleanup_expired of {expired:,}: store of {stores[1]:,} vs {stores[0]:,}",
            big,
            small,
            "s",
            "ratio <= 1.5",
            big / small <= 1.5,
            {
                "removed_per_s_small": round(expired / small),
                "removed_per_s_big": round(expired / big),
            },
        )
    ]


async def memory(bench: Bench) -> list[Result]:
    count = bench.size(5_000, 100_000)
    payload = b"x" * 1024
    async with await RedisBackend.from_url(bench.url, prefix="bench") as backend:
        client: Any = backend.client
        owner = uuid.uuid4().hex[:8]
        expiry = int((await client.time())[0]) * 1000 + 3_600_000
        await client.flushdb()
        before = await _used(client)
        await fill(
            backend,
            [
                BatchOp(make_key(owner, str(uuid.uuid4())), payload, expires_at_ms=expiry)
                for _ in range(count)
            ],
        )
        ours = (await _used(client) - before) / count
        await client.flushdb()
        before = await _used(client)
        for start in range(0, count, 1000):
            async with client.pipeline(transaction=False) as pipe:
                for i in range(start, min(start + 1000, count)):
                    task = str(uuid.uuid4())
                    key = f"seed:{owner}:{task}"
                    pipe.hset(key, mapping={"version": 1, "data": payload, "expires_at": expiry})
                    pipe.zadd(f"seed:{owner}:idx", {task: i})
                await pipe.execute()
        seed = (await _used(client) - before) / count
        await client.flushdb()
    return [
        Result(
            "7. Redis memory per 1 KiB record, indexes included",
            ours,
            seed,
            "bytes",
            "ratio <= 1.15",
            ours / seed <= 1.15,
            {"records": count},
        )
    ]


async def _used(client: Any) -> int:
    await asyncio.sleep(0.2)
    return int((await client.info("memory"))["used_memory"])
