"""The sweep and reaper cron jobs, each on a one-second interval."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from arq.worker import Worker
from redis.asyncio import Redis

from store import make_key
from store.redis import RedisBackend
from tests.harness import unique
from tests.worker.conftest import drop_test_keys, running_worker
from worker.producer.client import TaskStoreClient
from worker.protocol.settings import Settings
from worker.runtime.context import state


async def _until(
    redis: Redis, key: str, members: list[bytes], done: Callable[[], bool] = lambda: True
) -> None:
    """Until ``key`` holds ``members`` and ``done()`` (the run that did it has counted it)."""
    for _ in range(300):
        if await redis.zrange(key, 0, -1) == members and done():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{key} holds {await redis.zrange(key, 0, -1)}")


def _redis(client: TaskStoreClient) -> tuple[RedisBackend, Any]:
    backend = client.stores.backend
    assert isinstance(backend, RedisBackend)
    return backend, backend.client


@asynccontextmanager
async def fast_worker(
    settings: Settings, **intervals: int
) -> AsyncIterator[tuple[Worker, TaskStoreClient]]:
    fast = settings.model_copy(update=intervals)
    try:
        async with running_worker(fast) as worker, TaskStoreClient.connect(fast) as client:
            yield worker, client
    finally:
        await drop_test_keys(fast)


async def test_expired_records_are_swept_within_an_interval(settings: Settings) -> None:
    async with fast_worker(settings, sweep_interval_s=1, reap_interval_s=3600) as (worker, client):
        backend, redis = _redis(client)
        owner = unique()
        soon = int((await redis.time())[0]) * 1000 + 300
        for i in range(10):
            await client.put(make_key(owner, f"dies{i}"), b"x", expires_at_ms=soon)
        await client.put(make_key(owner, "lives"), b"x")
        metrics = state(worker.ctx).metrics
        await _until(
            redis,
            backend.keys.owner(owner).index,
            [b"lives"],
            lambda: metrics.value("taskstore_maintenance_removed_total", kind="sweep") >= 10,
        )
        assert await redis.zcard(backend.keys.owner(owner).expiry) == 0
        assert [k for k, _ in (await client.list_page(owner)).items] == [make_key(owner, "lives")]
        assert metrics.value("taskstore_maintenance_removed_total", kind="sweep") == 10


async def test_planted_orphans_are_reaped_within_an_interval(settings: Settings) -> None:
    async with fast_worker(settings, sweep_interval_s=60, reap_interval_s=1) as (worker, client):
        backend, redis = _redis(client)
        owner = unique()
        keys = backend.keys.owner(owner)
        for name in ("lives", "orphan", "lost"):
            await client.put(make_key(owner, name), b"x")
        await redis.delete(keys.record("orphan"))
        await redis.zrem(keys.index, "lost")
        metrics = state(worker.ctx).metrics
        await _until(
            redis,
            keys.index,
            [b"lives", b"lost"],
            lambda: metrics.value("taskstore_maintenance_removed_total", kind="reap") >= 2,
        )
