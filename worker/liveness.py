"""Who is alive: workers' heartbeats and running jobs' leases.

- A worker records itself in ``<queue>:workers`` (a sorted set: worker id by
  its last heartbeat, by the server's clock) every ``HEARTBEAT_S``; it counts
  as alive for ``ALIVE_S`` after that. Producers ask it when a job missed its
  deadline (no worker alive, or none free), and ``taskstore stats`` lists it.
- arq marks a claimed job with ``arq:in-progress:<id>`` for the job timeout
  plus 10 s. A job of ours shortens that to a lease of ``LEASE_S`` and renews
  it while it runs, so the job of a worker that died is claimed again by
  another within about ``LEASE_S``; the op ids make that re-run exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from arq.constants import in_progress_key_prefix
from redis.exceptions import RedisError

from worker.scripts import Script

log = logging.getLogger("taskstore.worker")

HEARTBEAT_S = 2.0
ALIVE_S = 3 * HEARTBEAT_S
_FORGET_S = 3600

_HEARTBEAT = Script("heartbeat")


def workers_key(queue_name: str) -> str:
    return f"{queue_name}:workers"


async def heartbeats(redis: Any, queue_name: str, worker_id: str) -> None:
    """Record this worker as alive every ``HEARTBEAT_S`` until cancelled."""
    while True:
        with contextlib.suppress(RedisError):
            await _HEARTBEAT(redis, [workers_key(queue_name)], [worker_id, _FORGET_S * 1000])
        await asyncio.sleep(HEARTBEAT_S)


async def forget(redis: Any, queue_name: str, worker_id: str) -> None:
    """Take a stopping worker off the list at once (it would drop off by itself)."""
    with contextlib.suppress(RedisError):
        await redis.zrem(workers_key(queue_name), worker_id)


async def live_workers(redis: Any, queue_name: str) -> dict[str, float]:
    """Live workers and the age of their last heartbeat in seconds."""
    now_s, micros = await redis.time()
    now_ms = now_s * 1000 + micros // 1000
    seen = await redis.zrangebyscore(
        workers_key(queue_name), now_ms - ALIVE_S * 1000, "+inf", withscores=True
    )
    return {
        (w.decode() if isinstance(w, bytes) else w): round((now_ms - score) / 1000, 3)
        for w, score in seen
    }


@contextlib.asynccontextmanager
async def lease(ctx: dict[str, Any], *also: str) -> AsyncIterator[None]:
    """Hold the running job's claim (and ``also`` keys) as a lease, renewed while the body runs."""
    redis, claim = ctx["redis"], in_progress_key_prefix + ctx["job_id"]
    lease_s: float = ctx["lease_s"]
    ms = int(lease_s * 1000)

    async def renew() -> None:
        while True:
            with contextlib.suppress(RedisError):
                async with redis.pipeline(transaction=False) as pipe:
                    for key in (claim, *also):
                        pipe.pexpire(key, ms)
                    held, *_ = await pipe.execute()
                if not held:
                    log.warning("job %s lost its lease; a re-run replays its op ids", ctx["job_id"])
            await asyncio.sleep(lease_s / 3)

    renewing = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
