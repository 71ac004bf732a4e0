"""The queue as an operator sees it, in three round trips whatever its length.

A job stays in its sorted set (``<queue>:writes`` for write jobs, ``<queue>``
for arq's; by the time it may start) from enqueue until it finishes, and a
started one is marked with ``arq:in-progress:<id>``. Running jobs are counted from the workers'
heartbeats rather than by looking for those marks; the oldest waiting job is
the first of the earliest ``LOOK_AHEAD`` ready entries that no worker holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from store.clock import server_ms
from worker.protocol.keys import QueueKeys, job_keys
from worker.runtime import liveness, tally

LOOK_AHEAD = 100


@dataclass(frozen=True, slots=True)
class QueueStats:
    queued: int
    """Jobs waiting: ready to start, or deferred (a retry's back-off)."""
    in_progress: int
    oldest_queued_age_s: float
    """How long the oldest ready job not yet started has waited; 0 when none waits."""
    workers: dict[str, liveness.WorkerState]
    last_hour: dict[str, int]
    """Jobs ``completed``, ``failed`` and ``retried`` in the last 60 minutes."""
    failed_jobs_kept: int
    scheduled: int = 0
    """Of the queued, those whose start time has not come."""
    minutes: list[tally.Minute] = field(default_factory=list)
    """The last 60 minutes, the oldest first: outcomes and latencies."""

    @property
    def ready(self) -> int:
        """Queued jobs whose start time has come."""
        return max(0, self.queued - self.scheduled)


async def observe(redis: Any, queue_name: str) -> QueueStats:
    keys = QueueKeys(queue_name)
    now_ms = await server_ms(redis)
    async with redis.pipeline(transaction=False) as pipe:
        for queue in (keys.writes, keys.queue):
            pipe.zcard(queue)
            pipe.zrangebyscore(queue, "-inf", now_ms, start=0, num=LOOK_AHEAD, withscores=True)
            pipe.zcount(queue, f"({now_ms}", "+inf")
        liveness.read_workers(pipe, queue_name, now_ms)
        pipe.zcard(keys.failed)
        tally.read_last_hour(pipe, queue_name, now_ms)
        replies = await pipe.execute()
    writes, ready_writes, later_writes, depth, ready, later = replies[:6]
    workers = liveness.parse_workers(replies[6:9], now_ms)
    failed_kept, last_hour = replies[9], replies[10:]
    running = sum(w.running for w in workers.values())
    oldest = 0.0
    ready = sorted([*ready_writes, *ready], key=lambda entry: entry[1])[:LOOK_AHEAD]
    if ready:
        async with redis.pipeline(transaction=False) as pipe:
            for job_id, _ in ready:
                pipe.exists(job_keys(liveness.text(job_id)).claim)
            held = await pipe.execute()
        waiting = [score for (_, score), h in zip(ready, held, strict=True) if not h]
        if waiting:
            oldest = round(max(0.0, (now_ms - waiting[0]) / 1000), 3)
    minutes = tally.per_minute(last_hour)
    return QueueStats(
        queued=max(0, int(depth) + int(writes) - running),
        in_progress=running,
        oldest_queued_age_s=oldest,
        workers=workers,
        last_hour=tally.parse_last_hour(last_hour),
        failed_jobs_kept=int(failed_kept),
        scheduled=int(later) + int(later_writes),
        minutes=minutes,
    )
