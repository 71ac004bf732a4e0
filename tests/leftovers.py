"""Every key a test's queue and store can create, in one place, and the check that a run
of the suite left none on the shared Redis.

A test's queue and store are named by its settings (``QUEUE_NAME``, ``KEY_PREFIX``).
The queue's own keys start with its name and the store's with its prefix, but
arq keeps each job's keys (``arq:job:<id>``, ...) under global prefixes: they are
found through the queue (queued ids, reply lists, kept failures) and, for jobs
that ran on arq's own path (cron runs, durable MCP tools), through the queue
their result records name. One kind may outlive a test for a
while: the claim of a cron run that a stopping worker had taken, which arq lets
expire by itself (within ``JOB_TIMEOUT_S`` + 10 s).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from store.redis.keyschema import glob_escaped
from worker.protocol.keys import QueueKeys, job_keys


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


async def drop_run_keys(redis: Redis, queue_name: str, key_prefix: str) -> None:
    """Remove what one test's queue and store made: nothing else's keys."""
    keys = QueueKeys(queue_name)
    own = [key async for key in redis.scan_iter(match=keys.own_pattern(), count=1000)]
    own += [key async for key in redis.scan_iter(match=f"{glob_escaped(key_prefix)}:*", count=1000)]
    ids = {_text(i) for i in await redis.zrange(queue_name, 0, -1)}
    ids |= {_text(i) for i in await redis.zrange(keys.writes, 0, -1)}
    ids |= {_text(i) for i in await redis.zrange(keys.failed, 0, -1)}
    reply = keys.reply("")
    ids |= {_text(k)[len(reply) :] for k in own if _text(k).startswith(reply)}
    doomed = [*own, *(key for job_id in ids for key in job_keys(job_id))]
    doomed += await _results_naming(redis, queue_name)
    for start in range(0, len(doomed), 500):
        await redis.unlink(*doomed[start : start + 500])


async def _results_naming(redis: Redis, queue_name: str) -> list[bytes]:
    """arq's result records of jobs that ran on this queue: each names its queue."""
    found = []
    async for key in redis.scan_iter(match=f"{job_keys('').result}*", count=1000):
        record = await redis.get(key)
        if record is not None and _queue_of(record) == queue_name:
            found.append(key)
    return found


def _queue_of(record: bytes) -> Any:
    try:
        return json.loads(record).get("q")
    except (ValueError, AttributeError):
        return None


def is_lease(key: bytes) -> bool:
    """A job's claim (``arq:in-progress:<id>``), which expires by itself."""
    return key.startswith(job_keys("").claim.encode())


def describe(keys: Iterable[bytes]) -> str:
    """Left-over keys, a few of each kind, for a failure message."""
    shown = sorted(_text(k) for k in keys)
    return ", ".join(shown[:20]) + (f" and {len(shown) - 20} more" if len(shown) > 20 else "")
