"""Outcomes stay true when the queue forgets a job: the store, not the queue, says what
was applied, and a write its caller was told was not applied never is."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from store import NotFound, OpWithdrawn, WriteNotConfirmed, make_key
from tests.harness import unique, until
from tests.servers import RedisProcess, free_ports
from tests.worker.conftest import drop_test_keys, isolated_settings, raw_redis, running_worker
from worker.producer.client import TaskStoreClient
from worker.producer.queue import wait_reply
from worker.protocol.envelope import open_envelope
from worker.protocol.errors import DeadlineExceeded, NoWorkerAlive, WriteNotApplied
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.serialization import deserialize, serialize
from worker.protocol.settings import Settings


async def _forget(client: TaskStoreClient, job_id: str) -> None:
    """What a queue Redis that failed over or restarted does to a job: it is gone."""
    await client.pool.delete(job_keys(job_id).job)
    await client.pool.zrem(client.settings.queue_name, job_id)


async def test_a_job_the_queue_lost_after_its_writes_applied_answers_their_outcomes(
    short: Settings,
) -> None:
    owner = unique()
    key = make_key(owner, "t")
    try:
        async with TaskStoreClient.connect(short) as client:
            put, create = await asyncio.gather(  # one coalesced job
                client.enqueue_put(key, b"v", op_id="p"),
                client.enqueue_create_task(owner, "tools/call", op_id="c"),
            )
            assert put.job_id == create.job_id
            # A worker ran the job before the queue lost it: both writes are in the store.
            await client.stores.backend.put(key, b"v", op_id=put.op_id)
            created = await client.stores.tasks.create(owner, "tools/call", op_id=create.op_id)
            await _forget(client, put.job_id)
            # No worker is alive and the queue knows nothing: the store answers.
            assert await put.result() == 1
            assert (await create.result()).task_id == created.task_id
            assert (await client.get(key)).version == 1
            assert await client.count(owner) == 2
    finally:
        await drop_test_keys(short)


async def test_a_write_told_not_applied_never_applies_even_if_its_job_comes_back(
    short: Settings,
) -> None:
    key = make_key(unique(), "t")
    redis = raw_redis(short)
    try:
        async with TaskStoreClient.connect(short) as client:
            handle = await client.enqueue_put(key, b"v", coalesce=False)
            job = job_keys(handle.job_id)
            payload = await redis.get(job.job)
            with pytest.raises(NoWorkerAlive):
                await handle.result()
            # The job comes back as a re-run (its try count survived a failover, its claim
            # did not), past its deadline: the worker withdraws it again, applying nothing.
            # (Its copies name no reply list: they are answered on their own, read here.)
            copy = deserialize(payload)
            del copy["reply_to"]
            await redis.set(job.job, serialize(copy), px=60_000)
            await redis.set(job.tries, 1, px=60_000)
            await redis.zadd(QueueKeys(short.queue_name).writes, {handle.job_id: 0})
            async with running_worker(short):
                reply = await wait_reply(client.pool, short.queue_name, handle.job_id, 20)
            with pytest.raises(DeadlineExceeded):
                open_envelope(open_envelope(reply)[0])
            # And a copy that no longer says how long its caller waited (written by hand):
            # the worker runs it, and the store refuses the attempt.
            await redis.delete(job.result, QueueKeys(short.queue_name).reply(handle.job_id))
            waitless = dict(copy)
            del waitless["wait_ms"]
            await redis.set(job.job, serialize(waitless), px=60_000)
            await redis.zadd(QueueKeys(short.queue_name).writes, {handle.job_id: 0})
            async with running_worker(short):
                reply = await wait_reply(client.pool, short.queue_name, handle.job_id, 20)
            with pytest.raises(OpWithdrawn):
                open_envelope(open_envelope(reply)[0])
            with pytest.raises(NotFound):
                await client.get(key)
            # Sending it again is a new attempt under the same op id: it applies, once.
            await redis.delete(job.result, QueueKeys(short.queue_name).reply(handle.job_id))
            async with running_worker(short):
                again = await handle.retry()
                assert await again.result() == 1
                assert await (await handle.retry()).result() == 1
            assert (await client.get(key)).version == 1
    finally:
        await redis.aclose()
        await drop_test_keys(short)


async def test_a_job_still_running_at_its_deadline_gives_its_real_outcome(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Withdrawing a started job would fence its writes before they ran: the caller would
    hear "not applied" for a write that was about to run. It must wait for the real one."""
    # Every store write waits 1.5 s for a replica the store does not have, then answers
    # WriteNotConfirmed (applied, unconfirmed): a slow write, while the store stays free.
    store = RedisProcess(free_ports(1)[0], tmp_path / "store")
    store.start()
    settings = isolated_settings(
        redis_url,
        "running",
        store_url=store.url,
        durable_writes=True,
        durable_wait_ms=1500,
        reply_timeout_s=0.3,
        max_tries=1,
    )
    first, second = make_key(unique(), "first"), make_key(unique(), "second")
    try:
        async with running_worker(settings), TaskStoreClient.connect(settings) as client:
            one = await client.enqueue_put(first, b"x", coalesce=False)
            # The second job (another owner's) is claimed while the first runs: it has
            # started, and its write runs on well past its caller's deadline.
            await until(lambda: client.pool.exists(job_keys(one.job_id).claim))
            two = await client.enqueue_put(second, b"x", coalesce=False)
            with caplog.at_level(logging.INFO):
                for handle in (one, two):
                    with pytest.raises(WriteNotConfirmed):
                        await handle.result()
            for key in (first, second):
                assert (await client.get(key)).version == 1
    except WriteNotApplied as exc:  # the outcome a withdrawn, started job would give
        pytest.fail(f"a started job was answered as never run: {exc!r}")
    finally:
        store.stop()
        await drop_test_keys(settings)
    assert not [r for r in caplog.records if "OpWithdrawn" in r.getMessage()]
