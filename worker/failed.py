"""The last failed jobs, kept for an operator to list and retry.

A job fails when the worker gives up on it: it timed out, it was refused (it
did not decode, or named no job), it ran out of tries, or it raised. Its
result is kept for ``KEEP_RESULT_S`` only; the step that stores it (the batch
path's ``finish.lua``, or arq's MULTI through ``ClaimPipeline``) also keeps a
record of it (``FailedJob``: no arguments, no data) among the last
``FAILED_JOBS_KEEP``, and, apart, the function and arguments a retry
re-enqueues, which are never printed.

A retry re-enqueues the job under its own id, so every write in it runs
under its own op id again: a write that was applied before the failure
replays its first outcome instead of applying twice.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker import tally
from worker.arq_internals import FinishHook, job_keys
from worker.errors import FailedJobNotKept, JobAlreadyQueued
from worker.jobs import REFUSE
from worker.queue import enqueue, job_payload, reply_key
from worker.scripts import DEAD_LETTER, DeadLetterArgs, DeadLetterKeys
from worker.serialization import SUCCEEDED, deserialize, serialize

_MESSAGE_CHARS = 300


def failed_key(queue_name: str) -> str:
    return f"{queue_name}:failed"


def _records_key(queue_name: str) -> str:
    return f"{queue_name}:failed:records"


def _jobs_key(queue_name: str) -> str:
    return f"{queue_name}:failed:jobs"


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


def on_job_finished(queue_name: str, keep: int) -> FinishHook:
    """What a finished job leaves behind: its count, and the record of a failure."""

    def finished(pipe: Any, job_id: str, result: bytes | None) -> None:
        if result is None:
            tally.count(pipe, queue_name, "retried")
        elif result.startswith(SUCCEEDED):  # no need to decode the whole result
            tally.count(pipe, queue_name, "completed")
        else:
            tally.count(pipe, queue_name, "failed")
            with contextlib.suppress(ValueError):
                record(pipe, queue_name, job_id, deserialize(result), keep)

    return finished


def keys(queue_name: str) -> DeadLetterKeys:
    """Where failed jobs are kept: ids by failure time, their records, their retry jobs."""
    return DeadLetterKeys(failed_key(queue_name), _records_key(queue_name), _jobs_key(queue_name))


def record(pipe: Any, queue_name: str, job_id: str, result: dict[str, Any], keep: int) -> None:
    """Queue on ``pipe`` the record of the failed job whose arq result is ``result``."""
    kept, failed_ms, job = entry(job_id, result)
    # EVAL, not EVALSHA: inside arq's MULTI a NOSCRIPT could not be answered by a retry.
    args = DeadLetterArgs(job_id, kept, failed_ms, keep, job)
    pipe.eval(DEAD_LETTER.source, *DEAD_LETTER.arguments(keys(queue_name), args))


def entry(job_id: str, result: dict[str, Any]) -> tuple[str, int, bytes]:
    """What is kept of the failed job whose arq result is ``result``: its record (JSON),
    when it failed (ms), and the job a retry re-enqueues (b"" when it cannot be retried)."""
    error = result.get("r")
    described = error.get("__error__") if isinstance(error, dict) else None
    if not isinstance(described, dict):
        described = {"type": type(error).__name__, "message": ""}
    failed_ms = int(result.get("ft") or 0)
    function = str(result.get("f"))
    retryable = function != REFUSE
    kept = {
        "job_id": job_id,
        "function": function,
        "error": str(described.get("type")),
        "message": str(described.get("message"))[:_MESSAGE_CHARS],
        "tries": int(result.get("t") or 0),
        "enqueued_at": _iso(int(result.get("et") or 0)),
        "failed_at": _iso(failed_ms),
        "retryable": retryable,
    }
    job = serialize({"f": function, "a": result.get("a"), "k": result.get("k")})
    return json.dumps(kept), failed_ms, job if retryable else b""


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


async def list_failed(redis: Any, queue_name: str, limit: int) -> list[FailedJob]:
    """The last ``limit`` failed jobs, newest first."""
    ids = await redis.zrange(failed_key(queue_name), 0, limit - 1, desc=True)
    if not ids:
        return []
    records = await redis.hmget(_records_key(queue_name), ids)
    return [FailedJob(**json.loads(r)) for r in records if r is not None]


async def retry(pool: Any, queue_name: str, job_id: str) -> None:
    """Enqueue a kept failed job again under its own id, then let go of its record.

    Its caller's deadline, if it had one, is dropped: the caller is gone, and
    the operator asks for it to run now. It keeps the time it was first sent,
    so an op id its caller withdrew stays withdrawn for it.
    """
    kept = await pool.hget(_jobs_key(queue_name), job_id)
    if kept is None:
        raise FailedJobNotKept(job_id)
    job = deserialize(kept)
    kwargs = {k: v for k, v in job["k"].items() if k != "deadline_ms"}
    sent = job.get("et") if type(job.get("et")) is int else None
    payload = job_payload(job["f"], serialize(job["a"]), serialize(kwargs), sent_at_ms=sent)
    # The failure's result and reply would make the enqueue script refuse the id.
    arq = job_keys(job_id)
    await pool.delete(arq.result, arq.tries, reply_key(queue_name, job_id))
    if not await enqueue(pool, queue_name, job_id, payload):
        raise JobAlreadyQueued(job_id)
    async with pool.pipeline(transaction=True) as pipe:
        pipe.zrem(failed_key(queue_name), job_id)
        pipe.hdel(_records_key(queue_name), job_id)
        pipe.hdel(_jobs_key(queue_name), job_id)
        await pipe.execute()
