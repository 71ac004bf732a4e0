"""Definite outcomes: a write whose job no worker started by its deadline never runs later."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from store import NotFound, make_key
from tests.harness import unique
from tests.worker.conftest import drop_test_keys, queued_ids, raw_redis, running_worker
from worker.producer.client import TaskStoreClient
from worker.producer.queue import job_payload, wait_reply
from worker.protocol.errors import DeadlineExceeded, NoWorkerAlive
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.settings import Settings


async def _drained(redis: Redis, settings: Settings) -> None:
    """Until the queue holds no job: every job there has been run or withdrawn."""
    for _ in range(400):
        if not await queued_ids(redis, settings):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the queue did not drain")


async def _never_applied(
    client: TaskStoreClient, redis: Redis, settings: Settings, key: str
) -> None:
    """A worker started now serves new writes, and the withdrawn write never lands."""
    async with running_worker(settings):
        assert await client.put(make_key(unique(), "after"), b"x") == 1
        await _drained(redis, settings)
        with pytest.raises(NotFound):
            await client.get(key)


async def _planted(client: TaskStoreClient, settings: Settings, job_id: str, payload: bytes) -> Any:
    """Put a job record on the queue by hand, as any producer could; its reply."""
    redis = raw_redis(settings)
    try:
        await redis.set(job_keys(job_id).job, payload, px=60_000)
        await redis.zadd(settings.queue_name, {job_id: int(time.time() * 1000)})
        return await wait_reply(client.pool, settings.queue_name, job_id, 20)
    finally:
        await redis.aclose()


async def test_with_no_worker_the_call_fails_as_such_and_never_runs_later(
    short: Settings,
) -> None:
    key = make_key(unique(), "t")
    redis = raw_redis(short)
    try:
        async with TaskStoreClient.connect(short) as client:
            with pytest.raises(NoWorkerAlive) as err:
                await client.put(key, b"never")
            assert err.value.op_id
            with pytest.raises(NoWorkerAlive):
                await client.create_task(unique(), "tools/call", coalesce=False)
            assert await queued_ids(redis, short) == [], "the jobs were withdrawn"
            await _never_applied(client, redis, short, key)
    finally:
        await redis.aclose()
        await drop_test_keys(short)


async def test_a_live_but_busy_queue_gives_deadline_exceeded(short: Settings) -> None:
    redis = raw_redis(short)
    try:
        # A heartbeat with no worker behind it: "alive", yet nothing takes jobs.
        now_s, micros = await redis.time()
        await redis.zadd(
            QueueKeys(short.queue_name).workers, {"phantom": now_s * 1000 + micros // 1000}
        )
        async with TaskStoreClient.connect(short) as client:
            key = make_key(unique(), "t")
            with pytest.raises(DeadlineExceeded):
                await client.put(key, b"late")
            await _never_applied(client, redis, short, key)
    finally:
        await redis.aclose()
        await drop_test_keys(short)


async def test_a_job_first_run_after_its_deadline_applies_nothing(
    client: TaskStoreClient, settings: Settings
) -> None:
    key = make_key(unique(), "t")
    job_id = uuid.uuid4().hex
    op = {"op": "put", "id": f"{job_id}-0", "args": {"key": key, "data": {"__bytes__": "eA=="}}}
    late = int(time.time() * 1000) - 1
    payload = job_payload("ops", json.dumps([[op]]).encode(), b'{"deadline_ms":%d}' % late)
    reply = await _planted(client, settings, job_id, payload)
    [outcome] = reply["value"]
    assert outcome["error"]["type"] == "DeadlineExceeded"
    assert outcome["error"]["fields"]["op_id"] == f"{job_id}-0"
    with pytest.raises(NotFound):
        await client.get(key)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"t":null,"f":"drop_everything","a":[],"k":{},"et":0}', "no job named"),
        (b"\x80\x04not json at all", "does not decode"),
        (b'{"t":null,"f":"ops","a":"not a list","k":{},"et":0}', "does not decode"),
        (b"[" * 100_000, "does not decode"),
    ],
)
async def test_every_job_answers_even_one_that_cannot_run(
    client: TaskStoreClient, settings: Settings, payload: bytes, reason: str
) -> None:
    reply = await _planted(client, settings, uuid.uuid4().hex, payload)
    assert reply is not None, "no reply"
    assert reply["ok"] is False
    assert reply["error"]["type"] == "InvalidArgument"
    assert reason in reply["error"]["message"]
