"""Scenarios 3 and 4: writes through the worker, against arq alone; batches against single jobs."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool

from bench.harness import Bench, Result, interleaved, percentile, rate, ratio_result
from store import BatchOp, make_key
from worker.client import TaskStoreClient
from worker.serialization import deserialize, serialize
from worker.settings import load_settings

CONCURRENCY = 64
PEER_RUNNER = (
    "import logging, sys; logging.basicConfig(level=logging.WARNING);"
    "from worker.cli import use_uvloop; use_uvloop();"
    "from arq import run_worker; from bench.peers.arq_noop import WorkerSettings;"
    "run_worker(WorkerSettings)"
)


@asynccontextmanager
async def process(argv: list[str], env: dict[str, str]) -> AsyncIterator[None]:
    proc = await asyncio.create_subprocess_exec(
        *argv, env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        await asyncio.sleep(1.5)  # imports and pool set-up
        yield
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def run(bench: Bench) -> list[Result]:
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    ours_env = {
        "TASKSTORE_REDIS_URL": bench.url,
        "TASKSTORE_QUEUE_NAME": queue,
        "TASKSTORE_KEY_PREFIX": "bench",
        "TASKSTORE_LOG_LEVEL": "WARNING",
    }
    settings = load_settings(redis_url=bench.url, queue_name=queue, key_prefix="bench")
    peer_env = {
        "BENCH_REDIS_URL": bench.url,
        "BENCH_QUEUE": f"{queue}-peer",
        "BENCH_POLL_DELAY_S": str(settings.poll_delay_s),
        "BENCH_MAX_JOBS": str(settings.max_jobs),
    }
    ours_worker = [sys.executable, "-m", "worker.cli", "worker"]
    peer_worker = [sys.executable, "-c", PEER_RUNNER]
    async with (
        process(ours_worker, ours_env),
        process(peer_worker, peer_env),
        TaskStoreClient.connect(settings) as client,
    ):
        pool = await create_pool(
            RedisSettings.from_dsn(bench.url),
            default_queue_name=peer_env["BENCH_QUEUE"],
            job_serializer=serialize,
            job_deserializer=deserialize,
        )
        results = await _throughput(bench, client, pool)
        results += await _latency(bench, client, pool)
        results += await _batching(bench, client)
        await pool.aclose()
    return results


async def _peer_op(pool: Any) -> None:
    job = await pool.enqueue_job("noop")
    assert job is not None
    await pool.blpop([f"peer:reply:{job.job_id}"], timeout=30)


async def _throughput(bench: Bench, client: TaskStoreClient, pool: ArqRedis) -> list[Result]:
    total = bench.size(640, 6400)
    each = total // CONCURRENCY

    async def ours() -> float:
        owner = uuid.uuid4().hex[:8]
        keys = [make_key(owner, f"t{i}") for i in range(CONCURRENCY)]
        created = await client.apply_batch([BatchOp(k, b"0") for k in keys])
        versions = dict(zip(keys, created, strict=True))

        async def one(key: str) -> None:
            for _ in range(each):
                versions[key] = await client.put_if_version(key, b"x" * 100, versions[key])  # type: ignore[arg-type]

        return await rate(each * CONCURRENCY, lambda: _gather(one(k) for k in keys))

    async def peer() -> float:
        async def one() -> None:
            for _ in range(each):
                await _peer_op(pool)

        return await rate(each * CONCURRENCY, lambda: _gather(one() for _ in range(CONCURRENCY)))

    mine, theirs = await interleaved(bench.rounds, ours, peer)
    return [
        ratio_result("3. worker path put_if_version, concurrency 64", mine, theirs, "ops/s", 0.85)
    ]


async def _open_loop(
    ops: int, per_second: float, call: Callable[[], Awaitable[Any]]
) -> list[float]:
    """Start one call every 1/per_second s; return each call's latency in ms."""
    latencies: list[float] = []

    async def timed() -> None:
        started = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - started) * 1000)

    tasks = []
    for _ in range(ops):
        tasks.append(asyncio.create_task(timed()))
        await asyncio.sleep(1 / per_second)
    await asyncio.gather(*tasks)
    return latencies


async def _latency(bench: Bench, client: TaskStoreClient, pool: ArqRedis) -> list[Result]:
    # One key per op: in an open loop a slow op must not leave the next one a stale version.
    owner = uuid.uuid4().hex[:8]
    count = bench.size(200, 2000)
    keys = iter([make_key(owner, f"t{i}") for i in range(count)])
    await client.apply_batch([BatchOp(make_key(owner, f"t{i}"), b"0") for i in range(count)])

    async def ours() -> None:
        await client.put_if_version(next(keys), b"x" * 100, 1)

    async def stock_arq() -> None:
        job = await pool.enqueue_job("noop")
        assert job is not None
        await job.result(timeout=30)

    mine = await _open_loop(count, 100, ours)
    peer = await _open_loop(bench.size(50, 200), 100, stock_arq)
    p50, p99 = percentile(mine, 50), percentile(mine, 99)
    detail = {"ops": len(mine), "peer": "arq job.result() on the same no-op job"}
    return [
        Result(
            "3. worker path p50 latency at 100 ops/s",
            p50,
            percentile(peer, 50),
            "ms",
            "ours <= 5 ms",
            p50 <= 5,
            detail,
        ),
        Result(
            "3. worker path p99 latency at 100 ops/s",
            p99,
            percentile(peer, 99),
            "ms",
            "ours <= 20 ms",
            p99 <= 20,
            detail,
        ),
    ]


async def _batching(bench: Bench, client: TaskStoreClient) -> list[Result]:
    total = bench.size(1000, 20000)
    batch = 100

    async def batched() -> float:
        owner = uuid.uuid4().hex[:8]
        ops = [BatchOp(make_key(owner, f"t{i}"), b"x" * 100) for i in range(total)]
        chunks = [ops[i : i + batch] for i in range(0, total, batch)]
        return await rate(total, lambda: _gather(_batches(client, chunks[i::4]) for i in range(4)))

    async def single() -> float:
        owner = uuid.uuid4().hex[:8]
        keys = [make_key(owner, f"t{i}") for i in range(total // 10)]

        async def one(part: list[str]) -> None:
            for key in part:
                await client.put(key, b"x" * 100)

        parts = [keys[i::CONCURRENCY] for i in range(CONCURRENCY)]
        return await rate(len(keys), lambda: _gather(one(p) for p in parts))

    mine, theirs = await interleaved(bench.rounds, batched, single)
    return [ratio_result("4. batches of 100 vs one job per op", mine, theirs, "ops/s", 10.0)]


async def _batches(client: TaskStoreClient, chunks: list[list[BatchOp]]) -> None:
    for chunk in chunks:
        await client.apply_batch(chunk)


async def _gather(coroutines: Any) -> None:
    await asyncio.gather(*coroutines)
