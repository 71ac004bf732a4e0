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

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from worker.protocol.keys import QueueKeys
from worker.protocol.scripts import DEAD_LETTER, DeadLetterArgs, DeadLetterKeys
from worker.protocol.serialization import SUCCEEDED, deserialize, serialize
from worker.runtime import tally
from worker.runtime.arq_internals import FinishHook, whole_ms
from worker.runtime.jobs import REFUSE
from worker.runtime.queue_clock import QueueClock

_MESSAGE_CHARS = 300
_OP_IDS = 20
"""Op ids a kept failure names (its write count says how many it had)."""


def on_job_finished(
    queue_name: str,
    keep: int,
    keep_result_ms: int,
    clock: QueueClock,
    untimed: frozenset[str] = frozenset(),
) -> FinishHook:
    """What a finished job of arq's own path leaves behind, in the step that finishes it: its
    count and latency, its reply (every job answers: a cron run or a durable tool as much as
    a write), and the record of a failure, timed by the queue's clock. Jobs named in
    ``untimed`` (cron runs, enqueued ahead of their tick to wait for it) are counted but not
    timed."""
    queue = QueueKeys(queue_name)

    def finished(pipe: Any, job_id: str, result: bytes | None) -> None:
        now_ms = clock.now_ms()
        if result is None:
            tally.count(pipe, queue_name, "retried", now_ms)
            return
        outcome = "completed" if result.startswith(SUCCEEDED) else "failed"
        try:
            decoded = deserialize(result)
        except ValueError:
            tally.count(pipe, queue_name, outcome, now_ms)
            return
        sent, done = whole_ms(decoded.get("et")), whole_ms(decoded.get("ft"))
        took = ""
        if sent is not None and done is not None and decoded.get("f") not in untimed:
            took = tally.bucket(max(done - sent, 0))
        tally.count(pipe, queue_name, outcome, now_ms, took)
        if decoded.get("f") != REFUSE:  # a refused job has answered already, with why
            pipe.lpush(queue.reply(job_id), serialize(_reply(decoded)))
            pipe.pexpire(queue.reply(job_id), keep_result_ms)
        if outcome == "failed":
            record(pipe, queue_name, job_id, decoded, keep, now_ms)

    return finished


def _reply(result: dict[str, Any]) -> dict[str, Any]:
    """arq's result of a job as the reply envelope a caller reads."""
    value = result.get("r")
    if result.get("s") is True:
        return {"ok": True, "value": value}
    described = value.get("__error__") if isinstance(value, dict) else None
    if not isinstance(described, dict):
        described = {"type": type(value).__name__, "message": str(value)[:_MESSAGE_CHARS]}
    error = {"type": str(described.get("type")), "message": str(described.get("message"))}
    return {"ok": False, "error": error}


def keys(queue_name: str) -> DeadLetterKeys:
    """Where failed jobs are kept: ids by failure time, their records, their retry jobs,
    their kinds (job name and error type)."""
    queue = QueueKeys(queue_name)
    return DeadLetterKeys(queue.failed, queue.failed_records, queue.failed_jobs, queue.failed_kinds)


def record(
    pipe: Any, queue_name: str, job_id: str, result: dict[str, Any], keep: int, failed_ms: int
) -> None:
    """Queue on ``pipe`` the record of the failed job whose arq result is ``result``."""
    kept, job = entry(job_id, result, failed_ms)
    # EVAL, not EVALSHA: inside arq's MULTI a NOSCRIPT could not be answered by a retry.
    args = DeadLetterArgs(job_id, kept, failed_ms, keep, job)
    pipe.eval(DEAD_LETTER.source, *DEAD_LETTER.arguments(keys(queue_name), args))


def entry(
    job_id: str,
    result: dict[str, Any],
    failed_ms: int,
    job: dict[str, Any] | None = None,
    op_ids: Sequence[str] = (),
) -> tuple[str, bytes]:
    """What is kept of a failed job whose arq result is ``result``: its record (JSON), and
    the job a retry re-enqueues (b"" when it cannot be retried): ``job`` as it was sent
    (the result's function and arguments when not given), without its caller's wait,
    with ``qt``, when the queue first took it, so the retry is judged as that attempt;
    the record names its writes' ``op_ids``, the first of them."""
    error = result.get("r")
    described = error.get("__error__") if isinstance(error, dict) else None
    if not isinstance(described, dict):
        described = {"type": type(error).__name__, "message": ""}
    function = str(result.get("f"))
    retryable = function != REFUSE
    kept = {
        "job_id": job_id,
        "function": function,
        "error": str(described.get("type")),
        "message": str(described.get("message"))[:_MESSAGE_CHARS],
        "tries": int(result.get("t") or 0),
        "enqueued_at": _iso(whole_ms(result.get("et")) or 0),
        "failed_at": _iso(failed_ms),
        "retryable": retryable,
        "op_ids": list(op_ids[:_OP_IDS]),
        "writes": len(op_ids),
    }
    sent = job or {"f": function, "a": result.get("a"), "k": result.get("k")}
    again = {k: v for k, v in sent.items() if k in _RESENT}
    stamp = sent.get("q")
    if isinstance(stamp, dict) and whole_ms(stamp.get("t")) is not None:
        again["qt"] = stamp["t"]
    again.setdefault("et", whole_ms(result.get("et")) or 0)
    return json.dumps(kept), serialize(again) if retryable else b""


_RESENT = frozenset({"v", "f", "a", "k", "et", "tc"})
"""What of a failed job a retry sends again: not its caller's wait, nor the queue's stamp."""


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
