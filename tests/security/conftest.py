"""What the adversarial-input tests share: a served client and a snapshot of the store's keys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.worker.conftest import isolated_settings, served_client
from worker.producer.client import TaskStoreClient
from worker.protocol.settings import Settings


@pytest.fixture(scope="module")
def fuzz_settings(redis_url: str) -> Settings:
    return isolated_settings(redis_url, "fuzz", max_tasks_per_owner=1000)


@pytest.fixture
async def fuzz_client(fuzz_settings: Settings) -> AsyncIterator[TaskStoreClient]:
    # No cron jobs: a sweep would change keys while a test compares them.
    async with served_client(fuzz_settings, cron_jobs=[]) as client:
        yield client


async def keyspace(redis: Redis, prefix: str) -> dict[bytes, bytes | None]:
    """Every key under ``prefix`` with its DUMP, to compare before and after a call.

    Keys due to expire within a minute are left out: the server may drop them
    in between, which is no change made by the call.
    """
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.pttl(key)
            pipe.dump(key)
        replies = await pipe.execute()
    return {
        key: dump
        for key, ttl, dump in zip(keys, replies[0::2], replies[1::2], strict=True)
        if not 0 <= ttl < 60_000
    }
