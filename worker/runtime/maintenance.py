"""The worker's own arq functions: ``refuse``, and the cron jobs (the expiry sweep, the
orphan reaper, and failing abandoned tasks).

``refuse`` answers a job arq's decoder could not run (``jobs.job_deserializer``).

arq's unique cron job ids stop two workers from running the same tick; a
lock in Redis also stops a run that outlasts its interval from overlapping
the next one, on this worker or another. The lock and the job's claim are
leases renewed while the run goes on, so a dead worker holds neither for
longer than ``LEASE_S``.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from store.errors import InvalidArgument, StorageError
from store.tasks import TaskError
from store.tasks.leases import RunnerLeases
from worker.protocol import envelope, tracing
from worker.protocol.keys import QueueKeys
from worker.protocol.scripts import RELEASE_LOCK, LockArgs, LockKeys
from worker.protocol.serialization import serialize
from worker.runtime.context import state
from worker.runtime.jobs import JobRefused
from worker.runtime.liveness import lease

log = logging.getLogger("taskstore.maintenance")
jobs_log = logging.getLogger("taskstore.jobs")


async def refuse(ctx: dict[str, Any], reason: str) -> None:
    """A job that cannot run (unknown function, undecodable payload): answer, then fail it."""
    jobs_log.warning("refused job %s: %s", ctx["job_id"], reason, extra={"job_id": ctx["job_id"]})
    settings = state(ctx).settings
    key = QueueKeys(settings.queue_name).reply(ctx["job_id"])
    # One round trip, no MULTI: the expiry only tidies up after the reply is read.
    async with ctx["redis"].pipeline(transaction=False) as pipe:
        pipe.lpush(key, serialize(envelope.failure(InvalidArgument(reason))))
        pipe.pexpire(key, int(settings.keep_result_s * 1000))
        await pipe.execute()
    raise JobRefused(reason)


def _lock_key(ctx: dict[str, Any], name: str) -> str:
    return QueueKeys(state(ctx).settings.queue_name).lock(name)


async def _locked(ctx: dict[str, Any], name: str) -> str | None:
    """Take the run's lock, a lease like the job's own claim; its token, or None if held."""
    token = secrets.token_hex(8)
    ttl_ms = int(state(ctx).settings.lease_s * 1000)
    acquired = await ctx["redis"].set(_lock_key(ctx, name), token, nx=True, px=ttl_ms)
    return token if acquired else None


async def _release(ctx: dict[str, Any], name: str, token: str) -> None:
    await RELEASE_LOCK.run(ctx["redis"], LockKeys(_lock_key(ctx, name)), LockArgs(token))


async def sweep_expired(ctx: dict[str, Any]) -> int:
    """Remove expired tasks and their index entries."""
    return await _maintain(ctx, "sweep", _sweep)


async def reap_orphans(ctx: dict[str, Any]) -> int:
    """Repair index entries that no longer match records."""
    return await _maintain(ctx, "reap", _reap)


async def fail_abandoned_tasks(ctx: dict[str, Any]) -> int:
    """Fail tasks whose runner's lease ran out: an MCP server process died running them."""
    return await _maintain(ctx, "abandoned", _abandoned)


async def _abandoned(ctx: dict[str, Any]) -> int:
    return await RunnerLeases(state(ctx).stores.tasks).fail_abandoned()


async def _sweep(ctx: dict[str, Any]) -> int:
    return int(await state(ctx).stores.backend.cleanup_expired())


async def _reap(ctx: dict[str, Any]) -> int:
    return await state(ctx).stores.backend.reap_orphans()


async def _maintain(ctx: dict[str, Any], name: str, run: Any) -> int:
    with tracing.TRACER.start_as_current_span(f"cron {name}", attributes={"taskstore.cron": name}):
        return await _maintain_locked(ctx, name, run)


async def _maintain_locked(ctx: dict[str, Any], name: str, run: Any) -> int:
    token = await _locked(ctx, name)
    if token is None:
        log.info("%s skipped: another run holds the lock", name)
        return 0
    metrics = state(ctx).metrics
    started = time.perf_counter()
    try:
        async with lease(ctx, state(ctx).settings.lease_s, _lock_key(ctx, name)):
            removed = int(await run(ctx))
    except (StorageError, TaskError) as exc:
        log.warning("%s failed: %s", name, exc)
        metrics.backend_errors.labels(job=name).inc()
        return 0
    finally:
        await _release(ctx, name, token)
    elapsed = time.perf_counter() - started
    metrics.removed.labels(kind=name).inc(removed)
    metrics.maintenance_seconds.labels(kind=name).observe(elapsed)
    log.info("%s removed %d in %.3f s", name, removed, elapsed, extra={"removed": removed})
    return removed
