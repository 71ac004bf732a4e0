"""Writes to one key apply in the order they were sent: across the jobs a client splits them
into, a job retried after a storage failure, two batches in flight, and several workers."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from store import make_key
from tests.harness import unique, until
from tests.servers import RedisProcess, free_ports
from tests.worker.conftest import drop_test_keys, isolated_settings, running_worker
from worker.producer.client import TaskStoreClient
from worker.producer.queue import enqueue, job_payload, wait_reply
from worker.protocol.keys import job_keys
from worker.protocol.settings import Settings
from worker.protocol.writes import MAX_OPS_PER_JOB

SENT, TRIALS = 300, 5
X = {"__bytes__": "eA=="}  # b"x" as a job carries it


async def _sent_in_one_turn(client: TaskStoreClient, key: str, coalesce: bool) -> list[int]:
    """``SENT`` puts to ``key``, all issued before any is sent; each one's new version."""
    puts = [client.put(key, str(i).encode(), coalesce=coalesce) for i in range(SENT)]
    return list(await asyncio.gather(*puts))


@pytest.mark.parametrize("workers", [2, 4])
@pytest.mark.parametrize("coalesce", [True, False], ids=["split-jobs", "one-job-each"])
async def test_puts_to_one_key_in_one_turn_apply_in_the_order_sent(
    redis_url: str, workers: int, coalesce: bool
) -> None:
    # 300 writes in one turn travel as three jobs of COALESCE_MAX_OPS, or as 300 jobs; a
    # batch of one job each spreads them over the workers.
    settings = isolated_settings(
        redis_url, "order", coalesce_max_ops=100, batch_jobs=1, reply_timeout_s=30
    )
    try:
        async with AsyncExitStack() as stack:
            for _ in range(workers):
                await stack.enter_async_context(running_worker(settings))
            client = await stack.enter_async_context(TaskStoreClient.connect(settings))
            for _ in range(TRIALS):
                key = make_key(unique(), "k")
                versions = await _sent_in_one_turn(client, key, coalesce)
                assert versions == list(range(1, SENT + 1))
                record = await client.get(key)
                assert (record.data, record.version) == (str(SENT - 1).encode(), SENT)
    finally:
        await drop_test_keys(settings)


async def test_a_retried_job_is_not_overtaken_by_a_later_one_for_its_key(
    redis_url: str, tmp_path: Path
) -> None:
    store = RedisProcess(free_ports(1)[0], tmp_path / "store")
    store.start()
    admin = store.client()
    settings = isolated_settings(
        redis_url, "retried", store_url=store.url, max_tries=10, reply_timeout_s=30
    )
    key = make_key(unique(), "k")
    try:
        async with running_worker(settings), TaskStoreClient.connect(settings) as client:
            admin.config_set("maxmemory", 1)  # every write fails: out of memory
            first = await client.enqueue_put(key, b"first", coalesce=False)
            claim, tries = job_keys(first.job_id).claim, job_keys(first.job_id).tries

            async def backing_off() -> bool:
                # Retried three times, it waits 800 ms before its next try.
                held, tried = await client.pool.get(claim), await client.pool.get(tries)
                return held == b"backoff" and int(tried or 0) >= 3

            await until(backing_off)
            admin.config_set("maxmemory", 0)  # the store takes writes again
            second = await client.enqueue_put(key, b"second", coalesce=False)
            assert await first.result() == 1
            assert await second.result() == 2
            record = await client.get(key)
            assert (record.data, record.version) == (b"second", 2)
    finally:
        admin.close()
        store.stop()
        await drop_test_keys(settings)


async def test_two_batches_in_flight_keep_the_order_of_one_key(settings: Settings) -> None:
    """A long first batch ends with a put; a compare-and-swap of the same key, behind it on
    the queue, is claimed while it runs: it must still see the put."""
    owner = unique()
    key = make_key(owner, "k")
    ops = [
        {"op": "put", "id": f"{owner}-{i}", "args": {"key": make_key(owner, f"o{i}"), "data": X}}
        for i in range(MAX_OPS_PER_JOB - 1)
    ]
    ops.append({"op": "put", "id": f"{owner}-last", "args": {"key": key, "data": X}})
    long_job = unique("job")
    try:
        async with TaskStoreClient.connect(settings) as client:
            payload = job_payload("ops", json.dumps([ops]).encode(), b"{}")
            assert (await enqueue(client.pool, settings.queue_name, long_job, payload)).added
            cas = await client.enqueue_put_if_version(key, b"after", 1, coalesce=False)
            async with running_worker(settings):
                reply = await wait_reply(client.pool, settings.queue_name, long_job, 60)
                assert await cas.result() == 2
            assert reply is not None
            assert reply["value"][-1] == {"ok": True, "value": 1}
            assert (await client.get(key)).data == b"after"
    finally:
        await drop_test_keys(settings)
