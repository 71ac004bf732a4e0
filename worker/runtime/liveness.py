"""Who is alive: workers' heartbeats and running jobs' leases.

- A worker records itself in ``<queue>:workers`` (a sorted set: worker id by
  its last heartbeat, by the server's clock) every ``HEARTBEAT_S``; it counts
  as alive for ``ALIVE_S`` after that. Producers ask it when a job missed its
  deadline (no worker alive, or none free), and ``taskstore stats`` lists it.
  Beside it, ``<queue>:workers:running`` holds how many jobs each runs, and
  ``taskstore health --worker-id`` judges one worker by its heartbeat's age.
- A claimed job holds ``arq:in-progress:<id>`` as a lease of ``LEASE_S``,
  renewed while it runs (by ``lease`` here on arq's path, by the batch path
  for its batches), so the job of a worker that died is claimed again by
  another within about ``LEASE_S``; the op ids make that re-run exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from store.clock import server_ms
from worker.protocol.keys import ALIVE_S, HEARTBEAT_S, QueueKeys, job_keys
from worker.protocol.scripts import HEARTBEAT, HeartbeatArgs, HeartbeatKeys

log = logging.getLogger("taskstore.worker")

_FORGET_S = 3600


@dataclass(frozen=True, slots=True)
class WorkerState:
    last_heartbeat_s: float
    """Seconds since the worker's last heartbeat, by the server's clock."""
    running: int
    """Jobs it was running at that heartbeat."""
    batches: int = 0
    """Batches of write jobs it held then."""


async def heartbeats(
    redis: Any,
    queue_name: str,
    worker_id: str,
    running: Callable[[], int],
    reached: Callable[[bool], None] = lambda _: None,
    batches: Callable[[], int] = lambda: 0,
) -> None:
    """Record this worker as alive, with its ``running()`` jobs and ``batches()`` in flight,
    every ``HEARTBEAT_S``.

    ``reached`` hears whether each heartbeat got to Redis (the worker-up gauge).
    """
    queue = QueueKeys(queue_name)
    keys = HeartbeatKeys(queue.workers, queue.running, queue.batches)
    while True:
        try:
            args = HeartbeatArgs(worker_id, _FORGET_S * 1000, running(), batches())
            await HEARTBEAT.run(redis, keys, args)
            reached(True)
        except RedisError:
            reached(False)
        await asyncio.sleep(HEARTBEAT_S)


async def forget(redis: Any, queue_name: str, worker_id: str) -> None:
    """Take a stopping worker off the list at once (it would drop off by itself)."""
    with contextlib.suppress(RedisError):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.zrem(QueueKeys(queue_name).workers, worker_id)
            pipe.hdel(QueueKeys(queue_name).running, worker_id)
            pipe.hdel(QueueKeys(queue_name).batches, worker_id)
            await pipe.execute()


def read_workers(pipe: Any, queue_name: str, now_ms: int) -> None:
    """Queue on ``pipe`` the three reads ``parse_workers`` takes the replies of."""
    since = now_ms - ALIVE_S * 1000
    pipe.zrangebyscore(QueueKeys(queue_name).workers, since, "+inf", withscores=True)
    pipe.hgetall(QueueKeys(queue_name).running)
    pipe.hgetall(QueueKeys(queue_name).batches)


def parse_workers(replies: list[Any], now_ms: int) -> dict[str, WorkerState]:
    seen, running, held = replies
    jobs = {text(w): int(n) for w, n in running.items()}
    batches = {text(w): int(n) for w, n in held.items()}
    return {
        text(w): WorkerState(
            round((now_ms - score) / 1000, 3), jobs.get(text(w), 0), batches.get(text(w), 0)
        )
        for w, score in seen
    }


async def live_workers(redis: Any, queue_name: str) -> dict[str, WorkerState]:
    """Live workers: the age of their last heartbeat and the jobs they run."""
    now_ms = await server_ms(redis)
    async with redis.pipeline(transaction=False) as pipe:
        read_workers(pipe, queue_name, now_ms)
        replies = await pipe.execute()
    return parse_workers(replies, now_ms)


def text(value: bytes | str) -> str:
    """A reply as text, whether the client decodes replies or not."""
    return value.decode() if isinstance(value, bytes) else value


@contextlib.asynccontextmanager
async def lease(ctx: dict[str, Any], lease_s: float, *also: str) -> AsyncIterator[None]:
    """Hold the running job's claim (and ``also`` keys) as a lease of ``lease_s``, renewed
    while the body runs."""
    redis, claim = ctx["redis"], job_keys(ctx["job_id"]).claim
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
