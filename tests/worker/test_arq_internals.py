"""Each behaviour of arq that ``worker.runtime.arq_internals`` names, pinned: an arq upgrade
fails here."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus, serialize_result
from arq.utils import timestamp_ms
from arq.worker import Worker, create_worker

from store.clock import server_ms
from tests.harness import unique
from tests.worker.conftest import drop_test_keys, isolated_settings, running_worker
from worker.protocol.keys import job_keys
from worker.protocol.serialization import deserialize, serialize
from worker.protocol.settings import Settings
from worker.runtime import tally
from worker.runtime.arq_internals import RETRY_KEEP_S, QueuePool, result_record
from worker.runtime.main import worker_settings


@pytest.fixture
async def settings(redis_url: str) -> AsyncIterator[Settings]:
    settings = isolated_settings(redis_url, "arq")
    yield settings
    await drop_test_keys(settings)


async def test_1_keys_are_arq_s(settings: Settings) -> None:
    keys = job_keys("j1")
    assert keys == ("arq:job:j1", "arq:in-progress:j1", "arq:retry:j1", "arq:result:j1")
    source = inspect.getsource(Worker.run_job)
    assert f"expire(retry_key_prefix + job_id, {RETRY_KEEP_S})" in source


async def test_2_records_are_what_arq_writes_and_reads(settings: Settings) -> None:
    cls = worker_settings(settings)
    pool: QueuePool = cls.redis_pool  # type: ignore[attr-defined]
    job_id = unique("job")
    queued = await pool.enqueue_job("put", "k", _job_id=job_id, _queue_name=settings.queue_name)
    assert queued is not None
    assert set(deserialize(await pool.get(job_keys(job_id).job))) == {"t", "f", "a", "k", "et"}
    job = {"f": "put", "a": ["k"], "k": {}, "et": 1}
    record = result_record(job_id, settings.queue_name, job, 1, True, b'{"ok":true}', 1, 2)
    arqs = serialize_result(
        "put", ("k",), {}, 1, 1, True, {}, 1, 2, "r", "q", job_id=job_id, serializer=serialize
    )
    assert arqs is not None
    assert set(deserialize(record)) == set(deserialize(arqs)), "the fields arq writes"
    await pool.set(job_keys(job_id).result, record)
    done = Job(job_id, pool, _queue_name=settings.queue_name, _deserializer=deserialize)
    assert await done.status() == JobStatus.complete
    assert await done.result(timeout=1) == {"ok": True}
    await pool.aclose()


async def test_3_the_poll_asks_the_pool_for_the_queue_s_ready_jobs(settings: Settings) -> None:
    cls = worker_settings(settings)
    pool: QueuePool = cls.redis_pool  # type: ignore[attr-defined]
    asked: list[int] = []

    async def poll() -> list[bytes]:
        asked.append(1)
        return []

    pool.arq_poll = poll
    worker = create_worker(cls, handle_signals=False)
    await worker._poll_iteration()
    assert asked == [1]
    claim = inspect.getsource(Worker.start_jobs)
    watched = ("pipe.watch(in_progress_key)", "pipe.exists(in_progress_key)", "pipe.zscore(")
    assert all(step in claim for step in watched)
    assert "pipe.psetex(in_progress_key" in claim
    # A WatchError from EXISTS or ZSCORE is not caught there: only the MULTI's is.
    assert claim.index("except (ResponseError, WatchError)") > claim.index("pipe.multi()")
    await pool.aclose()


async def test_4_arq_finishes_its_jobs_through_the_pool_s_pipelines(settings: Settings) -> None:
    async with running_worker(settings) as worker:
        pool: QueuePool = worker.pool  # type: ignore[assignment]
        # A job of arq's own path: its claim is a lease, its finish is counted.
        job_id = unique("job")
        await pool.enqueue_job("pinned", _job_id=job_id, _queue_name=settings.queue_name)
        job = Job(job_id, pool, _queue_name=settings.queue_name, _deserializer=deserialize)
        with pytest.raises(Exception, match="pinned"):
            await job.result(timeout=10)
        now_ms = await server_ms(pool)
        async with pool.pipeline(transaction=False) as pipe:
            tally.read_last_hour(pipe, settings.queue_name, now_ms)
            counts = tally.parse_last_hour(await pipe.execute())
        assert counts["failed"] == 1
    finish = inspect.getsource(Worker.finish_job)
    assert "tr.set(result_key_prefix + job_id" in finish
    assert "tr.zincrby(self.queue_name, incr_score, job_id)" in finish


async def test_5_the_settings_pool_is_the_worker_s_pool(settings: Settings) -> None:
    cls = worker_settings(settings)
    worker = create_worker(cls, handle_signals=False)
    assert worker.pool is cls.redis_pool  # type: ignore[attr-defined]
    context = inspect.getsource(Worker.run_job)
    assert all(f"'{key}': " in context for key in ("job_id", "job_try"))
    assert "self.ctx['redis'] = self.pool" in inspect.getsource(Worker.main)
    # close() runs its own command before on_shutdown (see worker_settings' release()).
    close = inspect.getsource(Worker.close)
    assert close.index("self.pool.delete") < close.index("self.on_shutdown")
    await worker.pool.aclose()
    assert serialize({"s": True, "r": 1}).startswith(b'{"s":true,')


async def test_6_arq_reads_this_machine_s_clock_in_whole_ms(settings: Settings) -> None:
    claim = inspect.getsource(Worker.start_jobs)
    assert "score > timestamp_ms()" in claim  # a job scored later than now is skipped
    assert "enqueue_time_ms = timestamp_ms()" in inspect.getsource(ArqRedis.enqueue_job)
    assert isinstance(timestamp_ms(), int)
    cls = worker_settings(settings)
    pool: QueuePool = cls.redis_pool  # type: ignore[attr-defined]
    # The worker's reading of the queue's clock is a round trip old, and the job was
    # scored a fraction of a ms ago: arq must still see it as due.
    now = await server_ms(pool)
    pool.clock.observe(now - 5)
    await pool.zadd(settings.queue_name, {"due": now + 0.5})
    async with pool.pipeline(transaction=True) as pipe:
        await pipe.watch("arq:in-progress:due")
        score = await pipe.zscore(settings.queue_name, "due")
    assert score is not None
    assert score <= timestamp_ms()
    # A score arq gives a job it enqueues (a cron run) moves onto the queue's clock.
    pool.clock.observe(now + 60_000)
    await pool.enqueue_job("later", _job_id="later", _queue_name=settings.queue_name)
    moved = await pool.zscore(settings.queue_name, "later")
    assert moved is not None
    assert moved > now + 50_000
    await pool.aclose()
