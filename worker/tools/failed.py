"""The failed jobs the worker kept (``worker.runtime.dead_letter``): listed, and retried.

A retry re-enqueues the job under its own id, so every write in it runs
under its own op id again: a write that was applied before the failure
replays its first outcome instead of applying twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from worker.producer.queue import enqueue
from worker.protocol.errors import FailedJobNotKept, JobAlreadyQueued
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.serialization import deserialize, serialize


@dataclass(frozen=True, slots=True)
class FailedJob:
    job_id: str
    function: str
    error: str
    message: str
    tries: int
    enqueued_at: str
    failed_at: str
    retryable: bool


async def list_failed(redis: Any, queue_name: str, limit: int) -> list[FailedJob]:
    """The last ``limit`` failed jobs, newest first."""
    ids = await redis.zrange(QueueKeys(queue_name).failed, 0, limit - 1, desc=True)
    if not ids:
        return []
    records = await redis.hmget(QueueKeys(queue_name).failed_records, ids)
    return [FailedJob(**json.loads(r)) for r in records if r is not None]


async def retry(pool: Any, queue_name: str, job_id: str) -> None:
    """Enqueue a kept failed job again under its own id, then let go of its record.

    Its caller's wait, if it had one, is dropped: the caller is gone, and the
    operator asks for it to run now. It is sent as the attempt the queue first
    took (its ``qt``), so an op id its caller withdrew stays withdrawn for it.
    """
    kept = await pool.hget(QueueKeys(queue_name).failed_jobs, job_id)
    if kept is None:
        raise FailedJobNotKept(job_id)
    job = deserialize(kept)
    first = job.pop("qt", None)
    job["k"] = {k: v for k, v in job["k"].items() if k != "deadline_ms"}
    job.setdefault("v", "1.0")  # a job kept before it carried its version
    # The failure's result and reply would make the enqueue script refuse the id.
    arq = job_keys(job_id)
    await pool.delete(arq.result, arq.tries, QueueKeys(queue_name).reply(job_id))
    if not (await enqueue(pool, queue_name, job_id, serialize(job), resend_qt=first)).added:
        raise JobAlreadyQueued(job_id)
    async with pool.pipeline(transaction=True) as pipe:
        pipe.zrem(QueueKeys(queue_name).failed, job_id)
        pipe.hdel(QueueKeys(queue_name).failed_records, job_id)
        pipe.hdel(QueueKeys(queue_name).failed_jobs, job_id)
        await pipe.execute()
