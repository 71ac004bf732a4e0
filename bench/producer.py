"""One producer process of scenario 3's multi-process row: ours (single-write jobs) or arq.

``python -m bench.producer ours|peer URL QUEUE OPS CONCURRENCY`` sets up, says
it is ready on ``<QUEUE>:ready``, waits for a token on ``<QUEUE>:go``, runs
OPS operations CONCURRENCY at a time, and prints the seconds they took.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis

from store import BatchOp, make_key
from worker.producer.client import TaskStoreClient
from worker.protocol.serialization import deserialize, serialize
from worker.protocol.settings import load_settings


async def main(kind: str, url: str, queue: str, ops: int, concurrency: int) -> float:
    control = Redis.from_url(url)
    try:
        return await (_ours if kind == "ours" else _peer)(
            control, url, queue, ops // concurrency, concurrency
        )
    finally:
        await control.aclose()


async def increments(
    client: TaskStoreClient,
    concurrency: int,
    each: int,
    *,
    coalesce: bool = True,
    owners: int = 1,
) -> list[Awaitable[None]]:
    """Fresh keys, one per coroutine, of ``owners`` owners, each coroutine CAS-writing its key
    ``each`` times."""
    names = [uuid.uuid4().hex[:8] for _ in range(owners)]
    keys = [make_key(names[i % owners], f"t{i}") for i in range(concurrency)]
    assert await client.apply_batch([BatchOp(k, b"0") for k in keys]) == [1] * len(keys)

    async def writes(key: str) -> None:
        version = 1
        for _ in range(each):
            version = await client.put_if_version(key, b"x" * 100, version, coalesce=coalesce)

    return [writes(k) for k in keys]


async def _ours(control: Redis, url: str, queue: str, each: int, concurrency: int) -> float:
    settings = load_settings(redis_url=url, queue_name=queue, key_prefix="bench")
    async with TaskStoreClient.connect(settings) as client:
        runs = await increments(client, concurrency, each, coalesce=False)
        return await _timed(control, queue, runs)


async def _peer(control: Redis, url: str, queue: str, each: int, concurrency: int) -> float:
    pool = await create_pool(
        RedisSettings.from_dsn(url),
        default_queue_name=queue,
        job_serializer=serialize,
        job_deserializer=deserialize,
    )

    async def noops() -> None:
        for _ in range(each):
            await peer_op(pool)

    try:
        return await _timed(control, queue, [noops() for _ in range(concurrency)])
    finally:
        await pool.aclose()


async def peer_op(pool: Any) -> None:
    """The peer's write: enqueue arq's no-op job and wait for its reply the way we do."""
    job = await pool.enqueue_job("noop")
    assert job is not None
    await pool.blpop([f"peer:reply:{job.job_id}"], timeout=30)


async def _timed(control: Redis, queue: str, runs: list[Awaitable[None]]) -> float:
    redis: Any = control  # redis-py's stubs mix sync and async return types
    await redis.lpush(f"{queue}:ready", b"1")
    await redis.blpop([f"{queue}:go"], timeout=60)
    started = time.perf_counter()
    await asyncio.gather(*runs)
    return time.perf_counter() - started


async def run_producers(
    argv: Callable[[int], list[str]], url: str, queue: str, processes: int
) -> float:
    """Start ``processes`` producers, release them together; the slowest one's seconds."""
    control: Any = Redis.from_url(url)
    procs = [
        await asyncio.create_subprocess_exec(*argv(i), stdout=asyncio.subprocess.PIPE)
        for i in range(processes)
    ]
    try:
        for _ in range(processes):
            assert await control.blpop([f"{queue}:ready"], timeout=60)
        await control.lpush(f"{queue}:go", *[b"1"] * processes)
        outputs = [await p.communicate() for p in procs]
        return max(float(out.decode()) for out, _ in outputs)
    finally:
        await control.aclose()


if __name__ == "__main__":
    kind_, url_, queue_, ops_, concurrency_ = sys.argv[1:6]
    print(asyncio.run(main(kind_, url_, queue_, int(ops_), int(concurrency_))))
