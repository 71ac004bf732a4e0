"""arq job functions: run writes, answer with envelopes, push the reply.

- ``<write name>`` (``put``, ``create_task``, ...): one write, arguments as arq's
  args and kwargs, op id = the job id; the reply is its envelope.
- ``ops``: many writes coalesced by a client, ``[{"op", "id", "args"}, ...]``,
  each under its own op id; the reply is a success envelope holding one
  envelope per write, in order.
- ``apply_batch``: raw puts and CAS ops, op ``i`` under ``<job id>:<i>``.
- ``refuse``: what the job decoder turns a job that cannot run into; it
  replies ``InvalidArgument`` so no caller waits for a job that will never run.

``TaskStoreClient`` sends only ``ops`` jobs; the others serve producers that
speak arq directly. Arguments are bound to the write's declaration inside the job, so a
producer's wrong arguments become a typed ``InvalidArgument`` outcome instead
of an arq crash. Server failures are retried by arq (the op ids make the
retry safe) until the last try, which reports them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import fields
from typing import Any

from arq import Retry

from store import BatchOp, InvalidArgument, VersionConflict
from store.checks import check_op_id
from worker import envelope, protocol, writes
from worker.context import state
from worker.errors import DeadlineExceeded
from worker.liveness import lease
from worker.operations import RETRYABLE, Call, Result, execute
from worker.queue import reply_key
from worker.serialization import deserialize, serialize
from worker.writes import WRITES, Write

log = logging.getLogger("taskstore.jobs")

Job = Callable[..., Coroutine[Any, Any, envelope.Envelope]]

MAX_OPS_PER_JOB = 10_000
BATCH_FIELDS = frozenset(f.name for f in fields(BatchOp)) - {"op_id"}


def write_job(write: Write[..., Any]) -> Job:
    """The job running one ``write``; its op id is the job id."""

    async def job(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> envelope.Envelope:
        try:
            call: Call | Exception = Call(write, write.bind(args, kwargs), ctx["job_id"])
        except InvalidArgument as exc:
            call = exc
        [outcome] = await _run(ctx, write.name, [call])
        await push_reply(ctx, outcome)
        return outcome

    job.__name__ = job.__qualname__ = write.name
    return job


async def ops(ctx: dict[str, Any], ops: object, deadline_ms: object = None) -> envelope.Envelope:
    """Many writes in one job, each with its own op id and outcome.

    A job first run after its ``deadline_ms`` (ms since the epoch) applies
    nothing: its caller has withdrawn it or is about to. A job run again after
    its worker died always runs: it may have applied some writes already, and
    its op ids replay them.
    """
    if not isinstance(ops, list) or not 0 < len(ops) <= MAX_OPS_PER_JOB:
        reply = envelope.failure(
            InvalidArgument(f"ops takes a list of 1 to {MAX_OPS_PER_JOB} writes")
        )
    else:
        calls = [_call(op) for op in ops]
        if _too_late(ctx, deadline_ms):
            calls = [DeadlineExceeded(c.op_id) if isinstance(c, Call) else c for c in calls]
        reply = envelope.success(await _run(ctx, "ops", calls))
    await push_reply(ctx, reply)
    return reply


def _too_late(ctx: dict[str, Any], deadline_ms: object) -> bool:
    if not isinstance(deadline_ms, int) or ctx["job_try"] > 1:
        return False
    return time.time() * 1000 > deadline_ms


async def refuse(ctx: dict[str, Any], reason: str) -> None:
    """A job that cannot run (unknown function, undecodable payload): answer, then fail it."""
    log.warning("refused job %s: %s", ctx["job_id"], reason, extra={"job_id": ctx["job_id"]})
    await push_reply(ctx, envelope.failure(InvalidArgument(reason)))
    raise JobRefused(reason)


class JobRefused(Exception):
    """arq records the refused job as failed with this."""


def _call(op: object) -> Call | Exception:
    """One entry of an ``ops`` job as a call, or the error that refuses it."""
    try:
        if not isinstance(op, dict) or set(op) != {"op", "id", "args"}:
            raise InvalidArgument('each write is an object {"op", "id", "args"}')
        write = WRITES.get(op["op"]) if isinstance(op["op"], str) else None
        if write is None:
            raise InvalidArgument(f"unknown write {op['op']!r:.80}; known: {sorted(WRITES)}")
        if not isinstance(op["args"], dict):
            raise InvalidArgument(f"{write.name}: args must be an object")
        op_id = check_op_id(op["id"])
        if op_id is None:
            raise InvalidArgument("every write of an ops job needs its op id")
        return Call(write, write.bind((), op["args"]), op_id)
    except InvalidArgument as exc:
        return exc


async def apply_batch(ctx: dict[str, Any], ops: object) -> envelope.Envelope:
    """Many puts and CAS ops in one job; op ``i`` runs under op id ``<job id>:<i>``."""
    if not isinstance(ops, list) or not all(
        isinstance(op, dict) and set(op) <= BATCH_FIELDS and {"key", "data"} <= set(op)
        for op in ops
    ):
        fields_ = sorted(BATCH_FIELDS)
        reply = envelope.failure(
            InvalidArgument(f"apply_batch takes a list of objects with fields {fields_}")
        )
    else:
        calls = [_batch_call(op, f"{ctx['job_id']}:{i}") for i, op in enumerate(ops)]
        reply = envelope.success(await _run(ctx, "apply_batch", calls))
    await push_reply(ctx, reply)
    return reply


def _batch_call(op: dict[str, Any], op_id: str) -> Call | Exception:
    try:
        return Call(*writes.batch_write(op), op_id)
    except InvalidArgument as exc:
        return exc


async def _run(
    ctx: dict[str, Any], job: str, calls: Sequence[Call | Exception]
) -> list[envelope.Envelope]:
    """Execute the calls; retry the job while a server failure may pass, else answer each."""
    worker = state(ctx)
    metrics = worker.metrics
    started = time.perf_counter()
    async with lease(ctx):
        results = await execute(worker.stores, calls)
    names = [call.write.name if isinstance(call, Call) else "invalid" for call in calls]
    failed = [(n, r) for n, r in zip(names, results, strict=True) if isinstance(r, RETRYABLE)]
    for name, _ in failed:
        metrics.backend_errors.labels(job=name).inc()
    if failed and ctx["job_try"] < worker.settings.max_tries:
        log.warning("%s %s: storage failed, will retry: %s", job, ctx["job_id"], failed[0][1])
        raise Retry(defer=min(0.05 * 2 ** ctx["job_try"], 2.0)) from failed[0][1]
    outcomes = [_envelope(r) for r in results]
    labels = Counter[str]()
    for name, outcome in zip(names, outcomes, strict=True):
        label = envelope.label(outcome)
        labels[label] += 1
        metrics.jobs.labels(job=name, outcome=label).inc()
        if label == VersionConflict.__name__:
            metrics.cas_conflicts.labels(job=name).inc()
    seconds = time.perf_counter() - started
    metrics.job_seconds.labels(job=job).observe(seconds)
    summary = ", ".join(f"{n} {label}" for label, n in sorted(labels.items()))
    log.info(
        "%s %s try %d: %s in %.1f ms",
        job,
        ctx["job_id"],
        ctx["job_try"],
        summary,
        seconds * 1000,
        extra={
            "job": job,
            "job_id": ctx["job_id"],
            "try": ctx["job_try"],
            "outcomes": dict(labels),
            "duration_ms": round(seconds * 1000, 2),
        },
    )
    return outcomes


def _envelope(result: Result) -> envelope.Envelope:
    if isinstance(result, Exception):
        return envelope.failure(result)
    return envelope.success(result)


async def push_reply(ctx: dict[str, Any], outcome: envelope.Envelope) -> None:
    """LPUSH the outcome where ``TaskStoreClient`` is BLMOVE-ing, expiring with the result."""
    settings = state(ctx).settings
    key = reply_key(settings.queue_name, ctx["job_id"])
    # One round trip, no MULTI: the expiry only tidies up after the reply is read.
    async with ctx["redis"].pipeline(transaction=False) as pipe:
        pipe.lpush(key, serialize(outcome))
        pipe.pexpire(key, int(settings.keep_result_s * 1000))
        await pipe.execute()


def job_functions() -> dict[str, Callable[..., Coroutine[Any, Any, Any]]]:
    """Every job the worker runs, by name."""
    jobs: dict[str, Job] = {name: write_job(w) for name, w in WRITES.items()}
    return {**jobs, "ops": ops, "apply_batch": apply_batch, REFUSE: refuse}


REFUSE = "refuse"


def job_deserializer(known: frozenset[str]) -> Callable[[bytes], Any]:
    """arq's job decoder: a job that cannot run becomes a ``refuse`` job, which answers.

    arq fails an undecodable job, or one naming no function, without calling
    any of ours, so its caller would hear nothing until its deadline. Rewriting
    it into a call of ``refuse`` (with the reason) lets the worker push an error
    reply; nothing of the payload is run or kept.
    """

    def decode(data: bytes) -> Any:
        try:
            job = deserialize(data)
        except (ValueError, RecursionError) as exc:
            return _refusal(f"the job does not decode as JSON: {exc!s:.200}")
        if "s" in job:  # a result, not a job
            return job
        function = job.get("f")
        reason = protocol.refusal(job.get("v"))
        if reason is None and not job.keys() >= JOB_FIELDS:
            reason = f"a job needs the fields {sorted(JOB_FIELDS)}"
        if reason is None and function not in known:
            reason = f"no job named {function!r:.80}; known: {sorted(known)}"
        if reason is not None:
            return _refusal(reason)
        job.setdefault("t", None)  # arq's tries at enqueue, which producers need not send
        return job

    return decode


JOB_FIELDS = frozenset({"f", "a", "k", "et"})


def _refusal(reason: str) -> dict[str, Any]:
    return {"t": None, "f": REFUSE, "a": [reason], "k": {}, "et": int(time.time() * 1000)}
