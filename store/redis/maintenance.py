"""The work that follows the whole store rather than one call: sweep, reaper, stats.

The due-index (owner ids by their earliest expiry) is the one key outside an
owner's slot. Writes lower it right after their own script; the sweep raises
or drops an owner's entry after sweeping it; the reaper heals it, and the
owners' indexes, after a process died between two such steps. A late
due-index only delays the sweep, because reads never trust it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import RedisCluster

from store.backend import StoreStats
from store.clock import server_ms
from store.redis import scripts
from store.redis.connect import RedisClient
from store.redis.failures import backend_errors
from store.redis.keyschema import KeySchema, OwnerKeys
from store.redis.lua import BoundScript

_OWNERS_PER_SWEEP_ROUND = 64
_STATS_CHUNK = 1000
_INDEX_PAGE = 500

Scan = Callable[[int, str, int], Awaitable[tuple[int, list[bytes]]]]


@dataclass(frozen=True, slots=True)
class _ReapStep:
    repaired: int
    keys_seen: int
    pass_complete: bool


class Maintenance:
    """Sweep, reaper and stats over one client and key schema."""

    def __init__(
        self, client: RedisClient, keys: KeySchema, *, sweep_batch: int, reap_batch: int
    ) -> None:
        self._client = client
        self._redis: Any = cast(Any, client)
        self._keys = keys
        self._sweep_batch = sweep_batch
        self._reap_batch = reap_batch
        self._sweep = BoundScript(client, scripts.SWEEP)
        self._reap_index = BoundScript(client, scripts.REAP_INDEX)
        self._reindex = BoundScript(client, scripts.REINDEX)

    async def lower_due(self, due: dict[str, int]) -> None:
        """Lower owners' due-index entries to the earliest expiries a write reported."""
        await self._redis.zadd(self._keys.due, due, lt=True)

    # -- stats --------------------------------------------------------------

    async def stats(self, progress: Callable[[int, int], None] | None) -> StoreStats:
        """Owners from the due-index, each counted by its own indexes: no keyspace SCAN.

        A chunk of owners is one pipeline of ``ZCARD`` and ``ZCOUNT`` per owner
        (``count.lua`` in plain commands, which a cluster pipeline can route).
        """
        due_key = self._keys.due
        with backend_errors(None):
            now = await server_ms(self._redis)
            total = int(await self._redis.zcard(due_key))
            due = int(await self._redis.zcount(due_key, "-inf", now))
            records = 0
            for start in range(0, total, _STATS_CHUNK):
                chunk = await self._redis.zrange(due_key, start, start + _STATS_CHUNK - 1)
                async with self._redis.pipeline(transaction=False) as pipe:
                    for owner in chunk:
                        keys = self._keys.owner(owner.decode())
                        pipe.zcard(keys.index)
                        pipe.zcount(keys.expiry, "-inf", now)
                    replies = await pipe.execute()
                records += sum(replies[0::2]) - sum(replies[1::2])
                if progress is not None:
                    progress(min(start + _STATS_CHUNK, total), total)
        return StoreStats(owners=total, records=records, owners_due=due)

    # -- sweep --------------------------------------------------------------

    async def sweep(self) -> int:
        """Sweep the owners the due-index says are due; cost follows the expired work."""
        removed = 0
        while True:
            with backend_errors(None):
                now = await server_ms(self._redis)
                due = await self._redis.zrangebyscore(
                    self._keys.due, "-inf", now, start=0, num=_OWNERS_PER_SWEEP_ROUND
                )
                if not due:
                    return removed
                owners = [o.decode() for o in due]
                results = await asyncio.gather(*(self._sweep_owner(o, now) for o in owners))
            removed += sum(results)

    async def _sweep_owner(self, owner_id: str, now: int) -> int:
        """Sweep one owner, then settle its due-index entry without losing a concurrent write.

        The sweep may raise the owner's due score (or drop it). A write that
        lands meanwhile lowers it again after its own script; re-reading the
        earliest expiry after the raise catches a write whose lowering came first.
        """
        keys = self._keys.owner(owner_id)
        expired = await self._redis.zrangebyscore(
            keys.expiry, "-inf", now, start=0, num=self._sweep_batch
        )
        swept = await self._sweep(*_many(keys, expired))
        if swept.more:
            return swept.removed
        if swept.next_expiry:
            await self._redis.zadd(self._keys.due, {owner_id: swept.next_expiry})
        else:
            await self._redis.zrem(self._keys.due, owner_id)
        await self._lower_due_from_index(owner_id, keys)
        return swept.removed

    async def _lower_due_from_index(self, owner_id: str, keys: OwnerKeys) -> None:
        first = await self._redis.zrange(keys.expiry, 0, 0, withscores=True)
        if first:
            await self.lower_due({owner_id: int(first[0][1])})

    # -- reaper -------------------------------------------------------------

    async def reap(self, full_pass: bool, progress: Callable[[int, int], None] | None) -> int:
        """Bounded steps of an incremental SCAN over every primary; the cursors are kept.

        One step unless ``full_pass``, then steps until every node's cursor
        wrapped; ``progress(keys_checked, repaired)`` hears the totals after each.
        """
        repaired = seen = 0
        while True:
            step = await self._reap_step()
            repaired, seen = repaired + step.repaired, seen + step.keys_seen
            if progress is not None:
                progress(seen, repaired)
            if not full_pass or step.pass_complete:
                return repaired

    async def _reap_step(self) -> _ReapStep:
        repaired = examined_keys = 0
        wrapped = True
        pattern = self._keys.scan_pattern()
        count = min(self._reap_batch, 1000)
        with backend_errors(None):
            for node_name, scan in self._scanners():
                cursor = int(await self._redis.hget(self._keys.reap, node_name) or 0)
                budget = self._reap_batch
                while True:
                    cursor, found = await scan(cursor, pattern, count)
                    repaired += await self._repair([k.decode() for k in found])
                    examined_keys += len(found)
                    budget -= count
                    if cursor == 0 or budget <= 0:
                        break
                wrapped = wrapped and cursor == 0
                await self._redis.hset(self._keys.reap, node_name, cursor)
        return _ReapStep(repaired, examined_keys, wrapped)

    async def _repair(self, found: Sequence[str]) -> int:
        jobs = []
        for raw in found:
            parsed = self._keys.parse(raw)
            if parsed is None:
                continue
            keys = self._keys.owner(parsed.owner_id)
            if parsed.kind == "record":
                jobs.append(self._repair_record(parsed.owner_id, parsed.name, keys))
            elif parsed.kind == "index":
                jobs.append(self._repair_index(keys))
            elif parsed.kind == "expiry":
                jobs.append(self._settle_due(parsed.owner_id, keys))
        return sum(await asyncio.gather(*jobs))

    async def _repair_record(self, owner_id: str, task_id: str, keys: OwnerKeys) -> int:
        done = await self._reindex(
            scripts.RecordIndexKeys(keys.record(task_id), keys.index, keys.expiry),
            scripts.TaskArgs(task_id),
        )
        if done.due:
            await self.lower_due({owner_id: done.due})
        return done.repaired

    async def _repair_index(self, keys: OwnerKeys) -> int:
        """Index entries without a record removed, a page of the index at a time."""
        removed = start = 0
        while True:
            tasks = await self._redis.zrange(keys.index, start, start + _INDEX_PAGE - 1)
            if tasks:
                removed_now: int = await self._reap_index(*_many(keys, tasks))
                removed += removed_now
                start += len(tasks) - removed_now
            if len(tasks) < _INDEX_PAGE:
                return removed

    async def _settle_due(self, owner_id: str, keys: OwnerKeys) -> int:
        await self._lower_due_from_index(owner_id, keys)
        return 0

    def _scanners(self) -> Iterator[tuple[str, Scan]]:
        if isinstance(self._client, RedisCluster):
            cluster = self._client
            for node in cluster.get_primaries():

                async def scan(
                    cursor: int, match: str, count: int, node: Any = node
                ) -> tuple[int, list[bytes]]:
                    # redis-py answers a cluster SCAN with ({node name: cursor}, keys).
                    cursors, keys = await cluster.execute_command(
                        "SCAN", cursor, "MATCH", match, "COUNT", count, target_nodes=node
                    )
                    return int(cursors[node.name]), list(keys)

                yield node.name, scan
        else:
            client = self._redis

            async def scan_one(cursor: int, match: str, count: int) -> tuple[int, list[bytes]]:
                next_cursor, keys = await client.scan(cursor, match=match, count=count)
                return int(next_cursor), list(keys)

            yield "single", scan_one


def _many(
    keys: OwnerKeys, tasks: Sequence[bytes]
) -> tuple[scripts.ManyRecordsKeys, scripts.ManyTasksArgs]:
    """KEYS and ARGV of a script over some of an owner's records."""
    names = tuple(t.decode() for t in tasks)
    return (
        scripts.ManyRecordsKeys(keys.index, keys.expiry, tuple(keys.record(t) for t in names)),
        scripts.ManyTasksArgs(names),
    )
