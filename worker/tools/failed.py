"""The failed jobs the worker kept (``worker.runtime.dead_letter``): listed, retried or
discarded.

A retry re-enqueues the job under its own id, so every write in it runs
under its own op id again: a write that was applied before the failure
replays its first outcome instead of applying twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
    op_ids: list[str] = field(default_factory=list)
    """The op ids of its writes, the first of them (a record kept before had none)."""
    writes: int = 0


async def list_failed(redis: Any, queue_name: str, limit: int) -> list[FailedJob]:
    """The last ``limit`` failed jobs, newest first."""
    found, _ = await find_failed(redis, queue_name, limit=limit)
    return found


async def find_failed(
    redis: Any,
    queue_name: str,
    *,
    function: str | None = None,
    error: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[FailedJob], int]:
    """A page of the kept failed jobs, newest first, of job ``function`` and error type
    ``error`` when given; and how many match in all."""
    keys = QueueKeys(queue_name)
    if function is None and error is None:
        total = int(await redis.zcard(keys.failed))
        ids = await redis.zrange(keys.failed, offset, offset + limit - 1, desc=True)
        return await _records(redis, keys, ids), total
    # Matched on the kinds (name and error, a few bytes each), not on every record.
    ids = await redis.zrange(keys.failed, 0, -1, desc=True)
    kinds = await redis.hmget(keys.failed_kinds, ids) if ids else []
    unknown = [job_id for job_id, kind in zip(ids, kinds, strict=True) if kind is None]
    if unknown:  # kept before kinds were: their records say
        found = {
            job.job_id: f"{job.function}\n{job.error}"
            for job in await _records(redis, keys, unknown)
        }
        kinds = [
            kind if kind is not None else found.get(_text(i), "")
            for i, kind in zip(ids, kinds, strict=True)
        ]

    def matches(kind: bytes | str) -> bool:
        name, _, kind_error = _text(kind).partition("\n")
        return function in (None, name) and error in (None, kind_error)

    matching = [job_id for job_id, kind in zip(ids, kinds, strict=True) if matches(kind)]
    return await _records(redis, keys, matching[offset : offset + limit]), len(matching)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _records(redis: Any, keys: QueueKeys, ids: list[bytes]) -> list[FailedJob]:
    if not ids:
        return []
    records = await redis.hmget(keys.failed_records, ids)
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
    await _let_go(pool, queue_name, job_id)


async def discard(pool: Any, queue_name: str, job_id: str) -> None:
    """Let go of a kept failed job without running it again."""
    if not await _let_go(pool, queue_name, job_id):
        raise FailedJobNotKept(job_id)


async def _let_go(pool: Any, queue_name: str, job_id: str) -> bool:
    """Forget a kept failed job; whether it was kept."""
    keys = QueueKeys(queue_name)
    async with pool.pipeline(transaction=True) as pipe:
        pipe.zrem(keys.failed, job_id)
        for kept in (keys.failed_records, keys.failed_jobs, keys.failed_kinds):
            pipe.hdel(kept, job_id)
        removed, *_ = await pipe.execute()
    return bool(removed)
