"""Keeping the last failed jobs, for an operator to list and retry (``worker.tools.failed``).

A job fails when the worker gives up on it: it timed out, it was refused (it
did not decode, or named no job), it ran out of tries, or it raised. Its
result is kept for ``KEEP_RESULT_S`` only; the step that stores it (the batch
path's ``finish.lua``, or arq's MULTI through ``ClaimPipeline``) also keeps a
record of it (``FailedJob``: no arguments, no data) among the last
``FAILED_JOBS_KEEP``, and, apart, the function and arguments a retry
re-enqueues, which are never printed.

"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from worker.protocol.keys import QueueKeys
from worker.protocol.scripts import DEAD_LETTER, DeadLetterArgs, DeadLetterKeys
from worker.protocol.serialization import SUCCEEDED, deserialize, serialize
from worker.runtime import tally
from worker.runtime.arq_internals import FinishHook
from worker.runtime.jobs import REFUSE

_MESSAGE_CHARS = 300


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
    return DeadLetterKeys(
        QueueKeys(queue_name).failed,
        QueueKeys(queue_name).failed_records,
        QueueKeys(queue_name).failed_jobs,
    )


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
    # A retry keeps ``et``, the time the job was first sent (see ``worker.tools.failed``).
    job = serialize(
        {"f": function, "a": result.get("a"), "k": result.get("k"), "et": result.get("et")}
    )
    return json.dumps(kept), failed_ms, job if retryable else b""


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
