"""``RedisBackend``: the storage contract on Redis or Redis Cluster.

Every write is one Lua script that updates the record, its owner's indexes
and its expiry atomically; every read filters expired records with the
server's clock in the same round trip. See ``store.redis.keyschema`` for the
layout, ``store.redis.batching`` for batches on a cluster and
``store.redis.maintenance`` for the sweep, the reaper and stats.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from store import checks
from store.backend import BatchOp, BatchOutcome, Page, StoreStats, VersionedRecord
from store.clock import server_ms
from store.cursor import decode_cursor, encode_cursor
from store.errors import (
    BackendError,
    CapacityExceeded,
    InvalidArgument,
    NotFound,
    OpIdReused,
    OpWithdrawn,
    StorageError,
    VersionConflict,
    WriteNotConfirmed,
)
from store.keys import make_key, parse_key, parse_prefix, validate_id
from store.redis import scripts
from store.redis.batching import ScriptCall, run_batch, run_pipelined
from store.redis.connect import RedisClient, connect
from store.redis.failures import backend_errors
from store.redis.keyschema import KeySchema
from store.redis.lua import BoundScript, NoArgs
from store.redis.maintenance import Maintenance

_WRITTEN, _CONFLICT, _OP_REUSED, _WITHDRAWN = 0, 1, 3, 4
_LIST_CHUNK = 500


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
        self._wait_ms = (
            None
            if durable_wait_ms is None
            else checks.check_positive("durable_wait_ms", durable_wait_ms)
        )
        # Chosen once: a plain write awaits its script with no frame in between.
        self._run: Callable[[BoundScript[Any, Any, Any], ScriptCall, str], Awaitable[Any]] = (
            _unconfirmed if self._wait_ms is None else self._confirmed
        )
        self._on_close = on_close
        self._write = BoundScript(client, scripts.WRITE)
        self._get = BoundScript(client, scripts.GET)
        self._delete = BoundScript(client, scripts.DELETE)
        self._withdraw = BoundScript(client, scripts.WITHDRAW)
        self._index_page = BoundScript(client, scripts.INDEX_PAGE)
        self._fetch = BoundScript(client, scripts.FETCH)
        self._count = BoundScript(client, scripts.COUNT)
        self._maintenance = Maintenance(
            client,
            self.keys,
            sweep_batch=checks.check_positive("sweep_batch", sweep_batch, 5000),
            reap_batch=checks.check_positive("reap_batch", reap_batch),
        )

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
        with backend_errors(key):
            got = await self._get(
                scripts.RecordKeys(self.keys.owner(owner_id).record(task_id)), NoArgs()
            )
        if got.data is None:
            raise NotFound(key)
        return VersionedRecord(got.data, got.version)

    async def delete(
        self, key: str, *, op_id: str | None = None, sent_at_ms: int | None = None
    ) -> bool:
        owner_id, task_id = parse_key(key)
        op = checks.check_op_id(op_id)
        sent = checks.check_ms("sent_at_ms", sent_at_ms)
        keys = self.keys.owner(owner_id)
        call = (
            scripts.WriteKeys(keys.record(task_id), keys.index, keys.expiry, keys.op(op)),
            scripts.DeleteArgs(task_id, op or "", self._op_ttl_ms, _arg(sent)),
        )
        with backend_errors(key):
            deleted: scripts.Deleted = await self._run(self._delete, call, key)
        if deleted.withdrawn:
            raise OpWithdrawn(op or "")
        if deleted.first_op is not None:
            raise OpIdReused(op or "", deleted.first_op.decode(), "delete")
        return bool(deleted.existed)

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
        with backend_errors(owner_id):
            return await self._count(scripts.IndexKeys(keys.index, keys.expiry), NoArgs())

    async def stats(self, progress: Callable[[int, int], None] | None = None) -> StoreStats:
        return await self._maintenance.stats(progress)

    async def cleanup_expired(self) -> int:
        return await self._maintenance.sweep()

    async def reap_orphans(
        self, *, full_pass: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> int:
        return await self._maintenance.reap(full_pass, progress)

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
        with backend_errors(None):
            replies = await run_batch(
                self.client,
                self._write,
                [self._write_call(w) for _, w in valid],
                wait_ms=self._wait_ms,
            )
            due: dict[str, int] = {}
            for (i, w), (raw, confirmed) in zip(valid, replies, strict=True):
                if isinstance(raw, StorageError):
                    outcomes[i] = raw
                    continue
                if isinstance(raw, BaseException):
                    outcomes[i] = BackendError(w.key, f"Redis failed: {raw}")
                    continue
                reply = scripts.WRITE.decode(raw)
                if reply.due:
                    due[w.owner_id] = min(reply.due, due.get(w.owner_id, reply.due))
                if not confirmed and reply.status == _WRITTEN:
                    outcomes[i] = WriteNotConfirmed(w.key, self._wait_ms or 0)
                    continue
                try:
                    outcomes[i] = _written(w, reply)
                except StorageError as exc:
                    outcomes[i] = exc
            if due:
                await self._maintenance.lower_due(due)
        return outcomes

    async def applied_version(self, key: str, op_id: str) -> int | None:
        owner_id, _ = parse_key(key)
        op = checks.check_op_id(op_id)
        with backend_errors(key):
            seen = await self._redis.get(self.keys.owner(owner_id).op(op))
        # A write's outcome is "status:version:expected:op_name", status 0 when
        # written; a delete's is "existed:delete".
        parts = (seen or b"").split(b":")
        return int(parts[1]) if len(parts) >= 3 and parts[0] == b"0" else None

    async def now_ms(self) -> int:
        with backend_errors(None):
            return await server_ms(self._redis)

    async def withdraw_op(self, owner_id: str, op_id: str, sent_at_ms: int) -> bool:
        keys = self.keys.owner(validate_id(owner_id, "owner id"))
        op = checks.check_op_id(op_id) or ""
        sent = checks.check_ms("sent_at_ms", sent_at_ms) or 0
        call = (scripts.OpKeys(keys.op(op)), scripts.WithdrawArgs(sent, self._op_ttl_ms))
        with backend_errors(owner_id):
            return bool(await self._run(self._withdraw, call, owner_id))

    # -- internals ----------------------------------------------------------

    async def _apply_write(self, w: checks.WriteRequest) -> int:
        with backend_errors(w.key):
            reply: scripts.Written = await self._run(self._write, self._write_call(w), w.key)
            if reply.due:
                await self._maintenance.lower_due({w.owner_id: reply.due})
        return _written(w, reply)

    async def _confirmed(
        self, script: BoundScript[Any, Any, Any], call: ScriptCall, key: str
    ) -> Any:
        """One script call confirmed by a replica, or ``WriteNotConfirmed``."""
        assert self._wait_ms is not None
        (raw,), confirmed = await run_pipelined(self.client, script, [call], wait_ms=self._wait_ms)
        if isinstance(raw, BaseException):
            raise raw
        if not confirmed:
            raise WriteNotConfirmed(key, self._wait_ms)
        return script.script.decode(raw)

    def _write_call(self, w: checks.WriteRequest) -> tuple[scripts.WriteKeys, scripts.WriteArgs]:
        """KEYS and ARGV of ``write.lua`` for one request."""
        keys = self.keys.owner(w.owner_id)
        options = (
            f"{_arg(w.expected_version)},{_arg(w.expires_at_ms)},{_arg(w.created_at_ms)},"
            f"{_arg(w.capacity)},{self._op_ttl_ms},{_arg(w.sent_at_ms)}"
        )
        return (
            scripts.WriteKeys(keys.record(w.task_id), keys.index, keys.expiry, keys.op(w.op_id)),
            scripts.WriteArgs(w.task_id, w.data, w.op_id or "", options, w.op_name),
        )

    async def _list_chunk(
        self, owner_id: str, descending: bool, after: tuple[int, str] | None, limit: int
    ) -> tuple[list[tuple[str, int, VersionedRecord]], bool]:
        """Up to ``limit`` live records after the cursor, and whether more follow.

        Two steps, so that the script reading records names their keys: the
        next task ids from the index, then their records. A step that finds
        ids whose records expired or vanished reads on after them.
        """
        keys = self.keys.owner(owner_id)
        found: list[tuple[str, int, VersionedRecord]] = []
        with backend_errors(owner_id):
            while True:
                want = limit + 1 - len(found)
                page = await self._index_page(
                    scripts.IndexOnlyKeys(keys.index),
                    scripts.IndexPageArgs(
                        "1" if descending else "0",
                        after[0] if after else "",
                        after[1] if after else "",
                        want,
                    ),
                )
                if not page.tasks:
                    return found, False
                tasks = tuple(t.decode() for t in page.tasks)
                fetched = await self._fetch(
                    scripts.ManyRecordsKeys(
                        keys.index, keys.expiry, tuple(keys.record(t) for t in tasks)
                    ),
                    scripts.ManyTasksArgs(tasks),
                )
                for task, score, version, data in zip(
                    tasks, page.scores, fetched.versions, fetched.data, strict=True
                ):
                    if data is not None:
                        found.append((task, score, VersionedRecord(data, version)))
                if len(found) > limit:
                    return found[:limit], True
                if len(tasks) < want:
                    return found, False
                after = page.scores[-1], tasks[-1]


def _written(w: checks.WriteRequest, reply: scripts.Written) -> int:
    """The new version from ``write.lua``'s reply, or the error it reports."""
    if reply.status == _WRITTEN:
        return reply.value
    if reply.status == _CONFLICT:
        raise VersionConflict(w.key, reply.expected, reply.value, reply.current_data)
    if reply.status == _OP_REUSED:
        first = (reply.current_data or b"").decode()
        raise OpIdReused(w.op_id or "", first, w.op_name)
    if reply.status == _WITHDRAWN:
        raise OpWithdrawn(w.op_id or "")
    raise CapacityExceeded(w.owner_id, reply.value)


def _unconfirmed(script: BoundScript[Any, Any, Any], call: ScriptCall, key: str) -> Awaitable[Any]:
    """A plain script call (``key`` is for the confirmed kind's error)."""
    return script(*call)


def _arg(value: int | None) -> int | str:
    return "" if value is None else value
