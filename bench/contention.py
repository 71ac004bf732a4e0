"""Scenario 2: CAS-retry increments of one hot key, against WATCH / MULTI / EXEC.

Ours is ``store.Updater``: read, transform, CAS, retry with jittered backoff,
combining the updates that one process makes to one key at the same time.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from redis.asyncio import Redis

from bench.harness import Bench, Result, ratio_result
from bench.peers.watch_multi import increment
from store import Updater, make_key
from store.redis import RedisBackend

WORKERS = 64


async def run(bench: Bench) -> list[Result]:
    total = bench.size(1000, 5000)
    each = total // WORKERS
    ours_rates, peer_rates, ours_retries, peer_retries = [], [], [], []
    alone_rates = []
    async with await RedisBackend.from_url(bench.url, prefix="bench") as backend:
        client = Redis.from_url(bench.url)
        for _ in range(bench.rounds):
            key = make_key(uuid.uuid4().hex[:8], "hot")
            await backend.put(key, b"0")
            updater = Updater(backend)
            started = time.perf_counter()
            await asyncio.gather(*(_ours(updater, key, each) for _ in range(WORKERS)))
            ours_rates.append(each * WORKERS / (time.perf_counter() - started))
            # Combined updates share a CAS: writes per increment, below 1.
            writes = (await backend.get(key)).version - 1
            assert (await backend.get(key)).data == str(each * WORKERS).encode()
            ours_retries.append(writes / (each * WORKERS))

            # The same with one Updater per coroutine, as 64 processes would be:
            # nothing is combined, each increment is its own CAS.
            key = make_key(uuid.uuid4().hex[:8], "hot")
            await backend.put(key, b"0")
            started = time.perf_counter()
            await asyncio.gather(*(_ours(Updater(backend), key, each) for _ in range(WORKERS)))
            alone_rates.append(each * WORKERS / (time.perf_counter() - started))

            hot = f"peer-hot-{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            counts = await asyncio.gather(*(_peer(client, hot, each) for _ in range(WORKERS)))
            peer_rates.append(each * WORKERS / (time.perf_counter() - started))
            peer_retries.append(sum(counts) / (each * WORKERS))
        await client.flushdb()
        await client.aclose()
    median = sorted(ours_rates)[len(ours_rates) // 2]
    peer = sorted(peer_rates)[len(peer_rates) // 2]
    return [
        ratio_result(
            "2. CAS contention, 64 coroutines on one key",
            median,
            peer,
            "increments/s",
            4.0,
            ours_cas_writes_per_increment=round(sorted(ours_retries)[len(ours_retries) // 2], 3),
            peer_retries_per_success=round(sorted(peer_retries)[len(peer_retries) // 2], 2),
        ),
        Result(
            "2b. CAS contention, one Updater per coroutine (no combining; reference)",
            sorted(alone_rates)[len(alone_rates) // 2],
            peer,
            "increments/s",
            "reference",
            True,
        ),
    ]


def _increment(data: bytes) -> bytes:
    return str(int(data) + 1).encode()


async def _ours(updater: Updater, key: str, each: int) -> None:
    """``each`` increments through ``Updater`` (read, transform, CAS, retry)."""
    for _ in range(each):
        await updater.update(key, _increment)


async def _peer(client: Redis, key: str, each: int) -> int:
    return sum([await increment(client, key) for _ in range(each)])
