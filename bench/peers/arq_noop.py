"""Peer of the worker path: arq with a no-op job that replies on a list.

Same serializer, poll delay and concurrency as taskstore's worker, and the
client waits the same way (a blocking pop on a per-job list), so the
difference is what taskstore does per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from arq import run_worker
from arq.connections import RedisSettings

from worker.protocol.serialization import deserialize, serialize


async def noop(ctx: dict[str, Any]) -> None:
    await ctx["redis"].lpush(f"peer:reply:{ctx['job_id']}", b"1")


class WorkerSettings:
    functions = (noop,)
    redis_settings = RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1"))
    queue_name = os.environ.get("BENCH_QUEUE", "peer:queue")
    job_serializer = serialize
    job_deserializer = deserialize
    poll_delay = float(os.environ.get("BENCH_POLL_DELAY_S", "0.005"))
    max_jobs = int(os.environ.get("BENCH_MAX_JOBS", "50"))
    keep_result = 60


def main() -> None:
    """Run the peer until SIGTERM, quietly: arq lets its last jobs' cancellation escape."""
    with contextlib.suppress(asyncio.CancelledError):
        # arq's settings Protocol asks for every optional attribute.
        run_worker(WorkerSettings)  # type: ignore[arg-type]
