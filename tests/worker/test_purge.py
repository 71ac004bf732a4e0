"""``taskstore purge --yes`` removes everything one prefix and one queue own on a shared
Redis, and nothing of a neighbour whose names begin with theirs."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from store import make_key
from tests.harness import unique
from tests.worker.conftest import cli, drop_test_keys, isolated_settings, raw_redis, running_worker
from worker.producer.client import TaskStoreClient
from worker.producer.queue import enqueue, job_payload, wait_reply
from worker.protocol.settings import Settings, load_settings


async def _try_out(settings: Settings) -> None:
    """What a try-out leaves: tasks, records, op outcomes, replies and results, a kept
    failure, workers' heartbeats, cron records, and a job still queued."""
    async with running_worker(settings), TaskStoreClient.connect(settings) as client:
        owner = unique()
        task = await client.create_task(owner, "tools/call")
        await client.cancel_task(task.task_id, owner)
        await client.put(make_key(owner, "k"), b"x", op_id="mine", coalesce=False)
        refused = unique("job")  # arguments missing: answered, and kept as a failure
        await enqueue(client.pool, settings.queue_name, refused, job_payload("put", b"[]", b"{}"))
        assert await wait_reply(client.pool, settings.queue_name, refused, 10) is not None
    async with TaskStoreClient.connect(settings) as client:  # no worker now: it stays queued
        await client.enqueue_put(make_key(unique(), "later"), b"x")


async def _keys(redis: Redis) -> set[bytes]:
    return {key async for key in redis.scan_iter(count=1000)}


async def test_purge_removes_a_prefix_and_a_queue_and_nothing_beside(redis_url: str) -> None:
    mine = isolated_settings(redis_url, "purge")
    # A neighbour whose queue name and prefix begin with mine.
    other = load_settings(
        redis_url=redis_url,
        queue_name=f"{mine.queue_name}-other",
        key_prefix=f"{mine.key_prefix}-other",
    )
    redis = raw_redis(mine)
    try:
        before = await _keys(redis)
        await _try_out(other)
        beside = await _keys(redis) - before
        await _try_out(mine)
        made = await _keys(redis) - before - beside
        assert any(k.startswith(b"arq:") for k in made)
        assert any(k.startswith(mine.key_prefix.encode()) for k in made)

        refused = cli(mine, "purge")
        assert refused.returncode == 2
        assert "--yes" in refused.stderr
        assert await _keys(redis) - before == beside | made

        done = cli(mine, "purge", "--yes")
        assert done.returncode == 0, done.stderr
        counts = json.loads(done.stdout)
        assert counts["store_keys"] > 0
        assert counts["queue_keys"] > 0
        assert counts["job_keys"] > 0
        left = await _keys(redis) - before
        # Mine are gone, the neighbour's all there (a claim of a cron run may expire).
        assert left - beside == set()
        assert {k for k in beside - left if not k.startswith(b"arq:in-progress:")} == set()
    finally:
        await drop_test_keys(other)
        await drop_test_keys(mine)
        await redis.aclose()
