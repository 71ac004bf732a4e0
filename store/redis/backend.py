"""``RedisBackend``: the storage contract on Redis or Redis Cluster.

Every write is one Lua script that updates the record, its owner's indexes
and its expiry atomically; every read filters expired records with the
server's clock in the same round trip. See ``store.redis.keyschema`` for the
layout. The due-index is the one key outside an owner's slot: it is lowered
right after the write that needs it and healed by ``reap_orphans`` if a
process dies in between; a late due-index only delays the sweep, because
reads never trust it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from store import checks
from store.backend import BatchOp, BatchOutcome, Page, StoreStats, VersionedRecord
from store.cursor import decode_cursor, encode_cursor
from store.errors import (
    BackendError,
    CapacityExceeded,
    InvalidArgument,
    NotFound,
    StorageError,
    VersionConflict,
    WriteNotConfirmed,
)
from store.keys import make_key, parse_key, parse_prefix, validate_id
from store.redis import scripts
from store.redis.connect import RedisClient, connect
from store.redis.keyschema import KeySchema, OwnerKeys
from store.redis.pipelines import ScriptCall, run_pipelined
from store.redis.scripts import BoundScript

_WRITTEN, _CONFLICT = 0, 1
_LIST_CHUNK = 500
_OWNERS_PER_SWEEP_ROUND = 64
_STATS_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class ReapProgress:
    repaired: int
    keys_seen: int
    pass_complete: bool


class RedisBackend(checks.CheckedWrites):
    """A ``StorageBackend`` on a ``redis.asyncio.Redis`` or ``RedisCluster`` client.

    With ``durable_wait_ms``, a write is acknowledged only once a replica
    confirms it (``WAIT 1 durable_wait_ms``); one it could not confirm raises
    ``WriteNotConfirmed``. Without it, replication is asynchronous and a
    failover may lose the last acknowledged writes.
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "ts",
        max_record_bytes: int = checks.DEFAULT_MAX_RECORD_BYTES,
        op_ttl_ms: int = checks.DEFAULT_OP_TTL_MS,
        sweep_batch: int = 1000,
        reap_batch: int = 1000,
        durable_wait_ms: int | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if client.get_encoder().decode_responses:
            raise InvalidArgument("RedisBackend needs a client with decode_responses=False")
        self.client = client
        # redis-py types asyncio commands as `Awaitable[T] | T`; calls go through this alias.
        self._redis: Any = cast(Any, client)
        self.keys = KeySchema(prefix)
        self._max_record_bytes = max_record_bytes
        self._op_ttl_ms = checks.check_positive("op_ttl_ms", op_ttl_ms)
        self._sweep_batch = checks.check_positive("sweep_batch", sweep_batch, 5000)
        self._reap_batch = checks.check_positive("reap_batch", reap_batch)
        self._wait_ms = (
            None
            if durable_wait_ms is None
            else checks.check_positive("durable_wait_ms", durable_wait_ms)
        )
        # Chosen once: a plain write awaits its script with no frame in between.
        self._run: Callable[[BoundScript, ScriptCall, str], Awaitable[Any]] = (
            _unconfirmed if self._wait_ms is None else self._confirmed
        )
        self._on_close = on_close
        self._write = BoundScript(client, scripts.WRITE)
        self._get = BoundScript(client, scripts.GET)
        self._delete = BoundScript(client, scripts.DELETE)
        self._list = BoundScript(client, scripts.LIST)
        self._count = BoundScript(client, scripts.COUNT)
        self._sweep = BoundScript(client, scripts.SWEEP)
        self._reap_index = BoundScript(client, scripts.REAP_INDEX)
        self._reindex = BoundScript(client, scripts.REINDEX)

    @classmethod
    async def from_url(
        cls,
        url: str,
        *,
        prefix: str = "ts",
        embedded_dir: str | os.PathLike[str] | None = None,
        client_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> RedisBackend:
        """Connect to ``url`` (see ``store.redis.connect``); the backend owns the client."""
        connection = await connect(url, embedded_dir=embedded_dir, **(client_options or {}))
        try:
            return cls(connection.client, prefix=prefix, on_close=connection.aclose, **options)
        except BaseException:
            await connection.aclose()
            raise

    async def __aenter__(self) -> RedisBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client if ``from_url`` opened it (and stop its embedded server)."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            await on_close()

    # -- the contract -------------------------------------------------------

    async def get(self, key: str) -> VersionedRecord:
        owner_id, task_id = parse_key(key)
        with _backend_errors(key):
            reply = await self._get(keys=(self.keys.owner(owner_id).record(task_id),))
        if reply is None:
            raise NotFound(key)
        return VersionedRecord(reply[1], int(reply[0]))

    async def delete(self, key: str, *, op_id: str | None = None) -> bool:
        owner_id, task_id = parse_key(key)
        op = checks.check_op_id(op_id)
        keys = self.keys.owner(owner_id)
        call = (
            (keys.record(task_id), keys.index, keys.expiry, keys.op(op)),
            (
                task_id,
                op or "",
                self._op_ttl_ms,
            ),
        )
        with _backend_errors(key):
            existed = await self._run(self._delete, call, key)
        return bool(existed)

    async def list_by_prefix(self, prefix: str) -> list[tuple[str, VersionedRecord]]:
        owner_id = parse_prefix(prefix)
        items: list[tuple[str, VersionedRecord]] = []
        after: tuple[int, str] | None = None
        while True:
            chunk, more = await self._list_chunk(owner_id, False, after, _LIST_CHUNK)
            items.extend((make_key(owner_id, task), record) for task, _, record in chunk)
            if not more:
                return items
            after = chunk[-1][1], chunk[-1][0]

    async def list_page(self, owner_id: str, cursor: str | None = None, limit: int = 50) -> Page:
        validate_id(owner_id, "owner id")
        limit = checks.check_positive("limit", limit, checks.MAX_PAGE_LIMIT)
        after = decode_cursor(cursor) if cursor is not None else None
        chunk, more = await self._list_chunk(owner_id, True, after, limit)
        items = [(make_key(owner_id, task), record) for task, _, record in chunk]
        next_cursor = encode_cursor(chunk[-1][1], chunk[-1][0]) if more else None
        return Page(items, next_cursor)

    async def count(self, owner_id: str) -> int:
        keys = self.keys.owner(validate_id(owner_id, "owner id"))
        with _backend_errors(owner_id):
            return int(await self._count(keys=(keys.index, keys.expiry)))

    async def stats(self, progress: Callable[[int, int], None] | None = None) -> StoreStats:
        """Owners from the due-index, each counted by its own indexes: no keyspace SCAN.

        A chunk of owners is one pipeline of ``ZCARD`` and ``ZCOUNT`` per owner
        (``count.lua`` in plain commands, which a cluster pipeline can route).
        """
        with _backend_errors(None):
            now = await self._server_ms()
            total = int(await self._redis.zcard(self.keys.due))
            due = int(await self._redis.zcount(self.keys.due, "-inf", now))
            records = 0
            for start in range(0, total, _STATS_CHUNK):
                chunk = await self._redis.zrange(self.keys.due, start, start + _STATS_CHUNK - 1)
                async with self._redis.pipeline(transaction=False) as pipe:
                    for owner in chunk:
                        keys = self.keys.owner(owner.decode())
                        pipe.zcard(keys.index)
                        pipe.zcount(keys.expiry, "-inf", now)
                    replies = await pipe.execute()
                records += sum(replies[0::2]) - sum(replies[1::2])
                if progress is not None:
                    progress(min(start + _STATS_CHUNK, total), total)
        return StoreStats(owners=total, records=records, owners_due=due)

    async def cleanup_expired(self) -> int:
        """Sweep the owners the due-index says are due; cost follows the expired work."""
        removed = 0
        while True:
            with _backend_errors(None):
                now = await self._server_ms()
                due = await self._redis.zrangebyscore(
                    self.keys.due, "-inf", now, start=0, num=_OWNERS_PER_SWEEP_ROUND
                )
                if not due:
                    return removed
                owners = [o.decode() for o in due]
                results = await asyncio.gather(*(self._sweep_owner(o) for o in owners))
            removed += sum(results)

    async def apply_batch(self, ops: Sequence[BatchOp]) -> list[BatchOutcome]:
        """Every op's script in one pipelined round trip (one per primary on a cluster)."""
        outcomes: list[BatchOutcome] = []
        valid: list[tuple[int, checks.WriteRequest]] = []
        for op in ops:
            try:
                valid.append((len(outcomes), checks.batch_request(op, self._max_record_bytes)))
                outcomes.append(0)
            except StorageError as exc:
                outcomes.append(exc)
        with _backend_errors(None):
            replies = await self._batch_replies([w for _, w in valid])
            due: dict[str, int] = {}
            for (i, w), reply in zip(valid, replies, strict=True):
                if isinstance(reply, StorageError):
                    outcomes[i] = reply
                    continue
                if isinstance(reply, BaseException):
                    outcomes[i] = BackendError(w.key, f"Redis failed: {reply}")
                    continue
                if reply[2]:
                    due[w.owner_id] = min(int(reply[2]), due.get(w.owner_id, int(reply[2])))
                try:
                    outcomes[i] = _written(w, reply)
                except StorageError as exc:
                    outcomes[i] = exc
            if due:
                await self._redis.zadd(self.keys.due, due, lt=True)
        return outcomes

    async def _batch_replies(self, requests: list[checks.WriteRequest]) -> list[Any]:
        """Replies in request order: one pipeline per primary, so each primary applies in order."""
        calls = [self._write_call(w) for w in requests]
        if not isinstance(self.client, RedisCluster):
            return await self._pipelined(calls, requests) if calls else []
        groups = self._by_primary(self.client, calls)
        results = await asyncio.gather(
            *(self._pipelined([calls[i] for i in g], [requests[i] for i in g]) for g in groups),
            return_exceptions=True,
        )
        replies: list[Any] = [None] * len(calls)
        for group, result in zip(groups, results, strict=True):
            for n, i in enumerate(group):
                replies[i] = result if isinstance(result, BaseException) else result[n]
        return replies

    @staticmethod
    def _by_primary(cluster: RedisCluster, calls: Sequence[ScriptCall]) -> list[list[int]]:
        """Indexes of ``calls`` grouped by the primary of their slot, in order within a group."""
        groups: dict[str, list[int]] = {}
        for i, (keys, _) in enumerate(calls):
            node = cluster.get_node_from_key(keys[0])
            groups.setdefault(node.name if node is not None else "", []).append(i)
        return list(groups.values())

    async def _pipelined(
        self, calls: Sequence[ScriptCall], requests: Sequence[checks.WriteRequest]
    ) -> list[Any]:
        replies, confirmed = await run_pipelined(
            self.client, self._write, calls, wait_ms=self._wait_ms
        )
        if confirmed == 0:
            wait_ms = self._wait_ms or 0
            return [
                WriteNotConfirmed(w.key, wait_ms) if _is_written(r) else r
                for r, w in zip(replies, requests, strict=True)
            ]
        return replies

    async def applied_version(self, key: str, op_id: str) -> int | None:
        owner_id, _ = parse_key(key)
        op = checks.check_op_id(op_id)
        with _backend_errors(key):
            seen = await self._redis.get(self.keys.owner(owner_id).op(op))
        # A write's outcome is "status:version:expected", status 0 when written;
        # a delete's is "1" or "0".
        parts = (seen or b"").split(b":")
        return int(parts[1]) if len(parts) == 3 and parts[0] == b"0" else None

    async def reap_orphans(self) -> int:
        """One bounded step of an incremental SCAN over every primary; the cursor is kept."""
        return (await self.reap_step()).repaired

    async def reap_step(self) -> ReapProgress:
        """``reap_orphans`` with its progress: keys looked at, and whether the pass ended."""
        repaired = examined_keys = 0
        wrapped = True
        pattern = self.keys.scan_pattern()
        count = min(self._reap_batch, 1000)
        with _backend_errors(None):
            for node_name, scan in self._scanners():
                cursor = int(await self._redis.hget(self.keys.reap, node_name) or 0)
                budget = self._reap_batch
                while True:
                    cursor, found = await scan(cursor, pattern, count)
                    repaired += await self._repair([k.decode() for k in found])
                    examined_keys += len(found)
                    budget -= count
                    if cursor == 0 or budget <= 0:
                        break
                wrapped = wrapped and cursor == 0
                await self._redis.hset(self.keys.reap, node_name, cursor)
        return ReapProgress(repaired, examined_keys, wrapped)

    # -- internals ----------------------------------------------------------

    async def _apply_write(self, w: checks.WriteRequest) -> int:
        with _backend_errors(w.key):
            reply = await self._run(self._write, self._write_call(w), w.key)
            if reply[2]:
                await self._redis.zadd(self.keys.due, {w.owner_id: reply[2]}, lt=True)
        return _written(w, reply)

    async def _confirmed(self, script: BoundScript, call: ScriptCall, key: str) -> Any:
        """One script call confirmed by a replica, or ``WriteNotConfirmed``."""
        assert self._wait_ms is not None
        (reply,), confirmed = await run_pipelined(
            self.client, script, [call], wait_ms=self._wait_ms
        )
        if isinstance(reply, BaseException):
            raise reply
        if not confirmed:
            raise WriteNotConfirmed(key, self._wait_ms)
        return reply

    def _write_call(self, w: checks.WriteRequest) -> ScriptCall:
        """KEYS and ARGV of ``write.lua`` for one request."""
        keys = self.keys.owner(w.owner_id)
        options = (
            f"{_arg(w.expected_version)},{_arg(w.expires_at_ms)},{_arg(w.created_at_ms)},"
            f"{_arg(w.capacity)},{self._op_ttl_ms}"
        )
        return (keys.record(w.task_id), keys.index, keys.expiry, keys.op(w.op_id)), (
            w.task_id,
            w.data,
            w.op_id or "",
            options,
        )

    async def _list_chunk(
        self, owner_id: str, descending: bool, after: tuple[int, str] | None, limit: int
    ) -> tuple[list[tuple[str, int, VersionedRecord]], bool]:
        keys = self.keys.owner(owner_id)
        with _backend_errors(owner_id):
            reply = await self._list(
                keys=(keys.index, keys.expiry),
                args=(
                    keys.record_prefix,
                    "1" if descending else "0",
                    after[0] if after else "",
                    after[1] if after else "",
                    limit,
                ),
            )
        chunk = [
            (
                reply[i].decode(),
                int(float(reply[i + 1])),
                VersionedRecord(reply[i + 3], int(reply[i + 2])),
            )
            for i in range(1, len(reply), 4)
        ]
        return chunk, bool(reply[0])

    async def _sweep_owner(self, owner_id: str) -> int:
        """Sweep one owner, then settle its due-index entry without losing a concurrent write.

        The sweep may raise the owner's due score (or drop it). A write that
        lands meanwhile lowers it again after its own script; re-reading the
        earliest expiry after the raise catches a write whose lowering came first.
        """
        keys = self.keys.owner(owner_id)
        removed, next_expiry, more = await self._sweep(
            keys=(keys.index, keys.expiry), args=(keys.record_prefix, self._sweep_batch)
        )
        if more:
            return int(removed)
        if next_expiry:
            await self._redis.zadd(self.keys.due, {owner_id: int(next_expiry)})
        else:
            await self._redis.zrem(self.keys.due, owner_id)
        await self._lower_due(owner_id, keys)
        return int(removed)

    async def _lower_due(self, owner_id: str, keys: OwnerKeys) -> None:
        first = await self._redis.zrange(keys.expiry, 0, 0, withscores=True)
        if first:
            await self._redis.zadd(self.keys.due, {owner_id: int(first[0][1])}, lt=True)

    async def _repair(self, found: Sequence[str]) -> int:
        jobs = []
        for raw in found:
            parsed = self.keys.parse(raw)
            if parsed is None:
                continue
            keys = self.keys.owner(parsed.owner_id)
            if parsed.kind == "record":
                jobs.append(self._repair_record(parsed.owner_id, parsed.name, keys))
            elif parsed.kind == "index":
                jobs.append(self._repair_index(keys))
            elif parsed.kind == "expiry":
                jobs.append(self._lower_due_counting_none(parsed.owner_id, keys))
        return sum(await asyncio.gather(*jobs))

    async def _repair_record(self, owner_id: str, task_id: str, keys: OwnerKeys) -> int:
        repaired, due = await self._reindex(
            keys=(keys.record(task_id), keys.index, keys.expiry), args=(task_id,)
        )
        if due:
            await self._redis.zadd(self.keys.due, {owner_id: int(due)}, lt=True)
        return int(repaired)

    async def _repair_index(self, keys: OwnerKeys) -> int:
        removed, start = 0, 0
        while start >= 0:
            count, start = await self._reap_index(
                keys=(keys.index, keys.expiry), args=(keys.record_prefix, start, 500)
            )
            removed += int(count)
            start = int(start)
        return removed

    async def _lower_due_counting_none(self, owner_id: str, keys: OwnerKeys) -> int:
        await self._lower_due(owner_id, keys)
        return 0

    def _scanners(
        self,
    ) -> Iterator[tuple[str, Callable[[int, str, int], Awaitable[tuple[int, list[bytes]]]]]]:
        if isinstance(self.client, RedisCluster):
            cluster = self.client
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

    async def _server_ms(self) -> int:
        seconds, micros = await self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000


def _written(w: checks.WriteRequest, reply: Sequence[Any]) -> int:
    """The new version from ``write.lua``'s reply, or the error it reports."""
    status, value, _, judged = reply[:4]
    if status == _WRITTEN:
        return int(value)
    if status == _CONFLICT:
        raise VersionConflict(w.key, int(judged), int(value), reply[4] if len(reply) > 4 else None)
    raise CapacityExceeded(w.owner_id, int(value))


def _unconfirmed(script: BoundScript, call: ScriptCall, key: str) -> Awaitable[Any]:
    """A plain script call (``key`` is for the confirmed kind's error)."""
    return script(*call)


def _is_written(reply: Any) -> bool:
    return not isinstance(reply, BaseException) and reply[0] == _WRITTEN


def _arg(value: int | None) -> int | str:
    return "" if value is None else value


class _backend_errors:
    """Turn redis-py errors into ``BackendError`` naming the key, keeping the cause.

    A class rather than ``@contextmanager``: it runs on every call, and this is cheaper.
    """

    __slots__ = ("key",)

    def __init__(self, key: str | None) -> None:
        self.key = key

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is not None and isinstance(exc, RedisError | RedisClusterException):
            raise BackendError(self.key, f"Redis failed: {type(exc).__name__}: {exc}") from exc
