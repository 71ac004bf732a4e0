"""``taskstore purge --yes``: remove everything one store prefix and one queue own, and only
that, so a try-out on a shared Redis leaves no trace.

What a prefix and a queue own (``KeySchema``, ``QueueKeys``):

- the store's keys, ``<prefix>:*``: records, indexes, the due-index, op outcomes
  and fences, the reaper's cursor (on every primary of a cluster);
- the queue's keys, ``<queue>`` and ``<queue>:*``: the sorted sets, replies, lanes,
  workers, tallies, kept failures, locks;
- arq's keys of the queue's jobs, ``arq:job|in-progress|retry|result:<id>``, found
  through the queue (queued ids, replies, kept failures) and, for jobs that ran
  and left only a result, through the queue each result names.

A key of another prefix or queue, or of a job of another queue, is never touched.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from store.redis.keyschema import glob_escaped
from worker.protocol.keys import QueueKeys, job_keys

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Purged:
    store_keys: int
    queue_keys: int
    job_keys: int


async def purge(queue_redis: Any, store_redis: Any | None, queue_name: str, prefix: str) -> Purged:
    """Remove the keys of ``prefix`` on the store's Redis (None: a store of no Redis) and of
    ``queue_name`` on the queue's (they may be one server); how many of each kind."""
    keys = QueueKeys(queue_name)
    own = [key async for key in _scan(queue_redis, f"{glob_escaped(queue_name)}:*")]
    if await queue_redis.exists(queue_name):
        own.append(queue_name.encode())
    ids: set[str] = set()
    for ranked in (keys.writes, keys.queue, keys.failed):
        ids |= {_text(i) for i in await queue_redis.zrange(ranked, 0, -1)}
    reply = keys.reply("")
    ids |= {_text(k)[len(reply) :] for k in own if _text(k).startswith(reply)}
    jobs: list[bytes | str] = [key for job_id in ids for key in job_keys(job_id)]
    jobs += [key async for key in _results_naming(queue_redis, queue_name)]
    removed_jobs = await _unlink(queue_redis, jobs)
    removed_queue = await _unlink(queue_redis, own)
    if store_redis is None:
        return Purged(0, removed_queue, removed_jobs)
    store = [key async for key in _scan(store_redis, f"{glob_escaped(prefix)}:*")]
    return Purged(await _unlink(store_redis, store), removed_queue, removed_jobs)


async def _scan(redis: Any, pattern: str) -> AsyncIterator[bytes]:
    async for key in redis.scan_iter(match=pattern, count=1000):  # every primary of a cluster
        yield key


async def _results_naming(redis: Any, queue_name: str) -> AsyncIterator[bytes]:
    """arq's result records of jobs that ran on this queue: each names its queue."""
    async for key in _scan(redis, f"{glob_escaped(job_keys('').result)}*"):
        record = await redis.get(key)
        try:
            named = json.loads(record).get("q") if record is not None else None
        except (ValueError, AttributeError):
            named = None
        if named == queue_name:
            yield key


async def _unlink(redis: Any, keys: Iterable[bytes | str]) -> int:
    """UNLINK the keys that exist, a key at a time on a cluster (they span slots)."""
    found = list(dict.fromkeys(keys))
    removed = 0
    single = hasattr(redis, "get_primaries")  # a cluster client
    for start in range(0, len(found), 1 if single else _CHUNK):
        removed += int(await redis.unlink(*found[start : start + (1 if single else _CHUNK)]))
    return removed


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
