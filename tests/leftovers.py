"""What a test's queue and store leave is removed, and the check that a run of the suite
left nothing on the shared Redis.

A test's queue and store are named by its settings (``QUEUE_NAME``, ``KEY_PREFIX``),
and ``taskstore purge`` (``worker.tools.purge``) removes what they own, arq's
keys of their jobs included. One kind may outlive a test for a
while: the claim of a cron run that a stopping worker had taken, which arq lets
expire by itself (within ``JOB_TIMEOUT_S`` + 10 s).
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from worker.protocol.keys import job_keys
from worker.tools.purge import purge


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


async def drop_run_keys(redis: Redis, queue_name: str, key_prefix: str) -> None:
    """Remove what one test's queue and store made, and nothing else's keys: what
    ``taskstore purge`` removes."""
    await purge(redis, redis, queue_name, key_prefix)


def is_lease(key: bytes) -> bool:
    """A job's claim (``arq:in-progress:<id>``), which expires by itself."""
    return key.startswith(job_keys("").claim.encode())


def describe(keys: Iterable[bytes]) -> str:
    """Left-over keys, a few of each kind, for a failure message."""
    shown = sorted(_text(k) for k in keys)
    return ", ".join(shown[:20]) + (f" and {len(shown) - 20} more" if len(shown) > 20 else "")
