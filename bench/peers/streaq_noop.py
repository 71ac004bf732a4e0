"""Reference peer of the worker path: streaq (on coredis) running an empty task.

One worker process with the same concurrency as taskstore's and arq's; the
producer awaits each task's result as streaq's users do.
"""

from __future__ import annotations

import os

from streaq import Worker

worker = Worker(
    redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1"),
    queue_name=os.environ.get("BENCH_QUEUE", "peer"),
    concurrency=int(os.environ.get("BENCH_MAX_JOBS", "50")),
    handle_signals=True,
    # A producer awaiting 64 results holds a pub/sub connection for each, beside its commands.
    redis_kwargs={"max_connections": 256},
)


@worker.task
async def noop() -> None:
    return None
