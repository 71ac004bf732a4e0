"""arq job functions: run an operation, answer with an envelope, push the reply.

Arguments are bound to the operation's signature inside the job, so a
producer's wrong arguments become a typed ``InvalidArgument`` outcome instead
of an arq crash. Storage failures are retried by arq (the op id makes the
retry safe) until the last try, which reports them.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from arq import Retry

from store.errors import BackendError, InvalidArgument, StorageError, VersionConflict
from store.tasks import StoreError, TaskError
from worker import envelope
from worker.metrics import Metrics
from worker.operations import Operation
from worker.serialization import serialize

log = logging.getLogger("taskstore.jobs")

Job = Callable[..., Coroutine[Any, Any, envelope.Envelope]]


def reply_key(queue_name: str, job_id: str) -> str:
    """Where the worker pushes a job's outcome for the waiting client."""
    return f"{queue_name}:reply:{job_id}"


def make_job(name: str, operation: Operation) -> Job:
    signature = inspect.signature(operation)

    async def job(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> envelope.Envelope:
        metrics: Metrics = ctx["metrics"]
        started = time.perf_counter()
        try:
            bound = signature.bind(ctx["stores"], ctx["job_id"], *args, **kwargs)
        except TypeError as exc:
            outcome = envelope.failure(InvalidArgument(f"{name}: {exc}"))
        else:
            outcome = await _run(ctx, name, operation, bound)
        label = "ok" if outcome["ok"] else outcome["error"]["type"]
        metrics.jobs.inc(job=name, outcome=label)
        metrics.job_seconds.observe(time.perf_counter() - started, job=name)
        if label == VersionConflict.__name__:
            metrics.cas_conflicts.inc(job=name)
        await push_reply(ctx, outcome)
        return outcome

    job.__name__ = job.__qualname__ = name
    return job


async def _run(
    ctx: dict[str, Any], name: str, operation: Operation, bound: inspect.BoundArguments
) -> envelope.Envelope:
    try:
        return envelope.success(await operation(*bound.args, **bound.kwargs))
    except (BackendError, StoreError) as exc:  # StoreError: the task layer's BackendError
        ctx["metrics"].backend_errors.inc(job=name)
        if ctx["job_try"] < ctx["max_tries"]:
            log.warning("%s %s: storage failed, will retry: %s", name, ctx["job_id"], exc)
            raise Retry(defer=min(0.05 * 2 ** ctx["job_try"], 2.0)) from exc
        return envelope.failure(exc)
    except (StorageError, TaskError) as exc:
        return envelope.failure(exc)


async def push_reply(ctx: dict[str, Any], outcome: envelope.Envelope) -> None:
    """LPUSH the outcome where ``TaskStoreClient`` is BLPOP-ing, expiring with the result."""
    key = reply_key(ctx["queue_name"], ctx["job_id"])
    # One round trip, no MULTI: the expiry only tidies up after the reply is read.
    async with ctx["redis"].pipeline(transaction=False) as pipe:
        pipe.lpush(key, serialize(outcome))
        pipe.pexpire(key, int(ctx["keep_result_s"] * 1000))
        await pipe.execute()
