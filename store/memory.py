"""In-memory backend: the reference semantics of the storage contract.

No server, no persistence: for tests, demos and single-process use. Each
method runs without awaiting between its read and its write, so concurrent
coroutines on one event loop see every call as atomic.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from store import checks
from store.backend import BatchOp, BatchOutcome, Page, StoreStats, VersionedRecord
from store.clock import Clock, wall_clock_ms
from store.cursor import decode_cursor, encode_cursor
from store.errors import (
    CapacityExceeded,
    NotFound,
    OpIdReused,
    OpWithdrawn,
    StorageError,
    VersionConflict,
)
from store.keys import make_key, parse_key, parse_prefix, validate_id


@dataclass(slots=True)
class _Entry:
    data: bytes
    version: int
    created_at_ms: int
    expires_at_ms: int | None

    def live(self, now: int) -> bool:
        return self.expires_at_ms is None or self.expires_at_ms > now


@dataclass(frozen=True, slots=True)
class _Withdrawn:
    """An op id's fence: attempts sent up to ``sent_at_ms`` can never apply."""

    sent_at_ms: int


_Outcome = int | bool | StorageError | _Withdrawn


class InMemoryBackend(checks.CheckedWrites):
    """A ``StorageBackend`` held in dicts, with an injectable millisecond clock."""

    def __init__(
        self,
        *,
        clock: Clock = wall_clock_ms,
        max_record_bytes: int = checks.DEFAULT_MAX_RECORD_BYTES,
        op_ttl_ms: int = checks.DEFAULT_OP_TTL_MS,
    ) -> None:
        self._clock = clock
        self._max_record_bytes = max_record_bytes
        self._op_ttl_ms = op_ttl_ms
        self._owners: dict[str, dict[str, _Entry]] = {}
        self._ops: dict[tuple[str, str], tuple[_Outcome, int, str]] = {}
        """(owner, op id) -> first outcome, when it expires, the operation it is bound to."""

    async def __aenter__(self) -> InMemoryBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Nothing to release; present so every backend closes the same way."""

    async def get(self, key: str) -> VersionedRecord:
        owner_id, task_id = parse_key(key)
        entry = self._live(owner_id, task_id, self._clock())
        if entry is None:
            raise NotFound(key)
        return VersionedRecord(entry.data, entry.version)

    async def delete(
        self, key: str, *, op_id: str | None = None, sent_at_ms: int | None = None
    ) -> bool:
        owner_id, task_id = parse_key(key)
        op = checks.check_op_id(op_id)
        sent = checks.check_ms("sent_at_ms", sent_at_ms)
        now = self._clock()
        replayed = self._replay(owner_id, op, "delete", None, sent, now)
        if replayed is not None:
            return bool(replayed)
        records = self._owners.get(owner_id, {})
        entry = records.pop(task_id, None)
        existed = entry is not None and entry.live(now)
        self._record_op(owner_id, op, "delete", existed, now)
        return existed

    async def list_by_prefix(self, prefix: str) -> list[tuple[str, VersionedRecord]]:
        owner_id = parse_prefix(prefix)
        return [
            (make_key(owner_id, task_id), VersionedRecord(e.data, e.version))
            for task_id, e in self._ordered(owner_id, self._clock())
        ]

    async def list_page(self, owner_id: str, cursor: str | None = None, limit: int = 50) -> Page:
        validate_id(owner_id, "owner id")
        limit = checks.check_positive("limit", limit, checks.MAX_PAGE_LIMIT)
        oldest_first = self._ordered(owner_id, self._clock())
        end = len(oldest_first)
        if cursor is not None:
            created, task_id = decode_cursor(cursor)
            order = [(e.created_at_ms, _utf8(t)) for t, e in oldest_first]
            end = bisect_left(order, (created, _utf8(task_id)))
        chunk = oldest_first[max(0, end - limit) : end][::-1]
        items = [(make_key(owner_id, t), VersionedRecord(e.data, e.version)) for t, e in chunk]
        more = end > limit
        next_cursor = encode_cursor(chunk[-1][1].created_at_ms, chunk[-1][0]) if more else None
        return Page(items, next_cursor)

    async def count(self, owner_id: str) -> int:
        return self._count(validate_id(owner_id, "owner id"), self._clock())

    async def stats(self, progress: Callable[[int, int], None] | None = None) -> StoreStats:
        now = self._clock()
        expiring = [
            records
            for records in self._owners.values()
            if any(e.expires_at_ms is not None for e in records.values())
        ]
        if progress is not None:
            progress(len(expiring), len(expiring))
        return StoreStats(
            owners=len(expiring),
            records=sum(e.live(now) for records in expiring for e in records.values()),
            owners_due=sum(any(not e.live(now) for e in r.values()) for r in expiring),
        )

    async def cleanup_expired(self) -> int:
        now = self._clock()
        removed = 0
        for owner_id in list(self._owners):
            records = self._owners[owner_id]
            for task_id in [t for t, e in records.items() if not e.live(now)]:
                del records[task_id]
                removed += 1
            if not records:
                del self._owners[owner_id]
        self._ops = {k: v for k, v in self._ops.items() if v[1] > now}
        return removed

    async def apply_batch(self, ops: Sequence[BatchOp]) -> list[BatchOutcome]:
        outcomes: list[BatchOutcome] = []
        for op in ops:
            try:
                outcomes.append(self._write(checks.batch_request(op, self._max_record_bytes)))
            except StorageError as exc:
                outcomes.append(exc)
        return outcomes

    async def applied_version(self, key: str, op_id: str) -> int | None:
        owner_id, _ = parse_key(key)
        op = checks.check_op_id(op_id)
        seen = self._ops.get((owner_id, op or ""))
        if seen is None or seen[1] <= self._clock() or not isinstance(seen[0], int):
            return None
        return None if isinstance(seen[0], bool) else seen[0]

    async def withdraw_op(self, owner_id: str, op_id: str, sent_at_ms: int) -> bool:
        validate_id(owner_id, "owner id")
        op = checks.check_op_id(op_id) or ""
        sent = checks.check_ms("sent_at_ms", sent_at_ms) or 0
        now = self._clock()
        seen = self._ops.get((owner_id, op))
        if seen is not None and seen[1] > now:
            outcome = seen[0]
            if isinstance(outcome, _Withdrawn):
                sent = max(sent, outcome.sent_at_ms)
            elif not isinstance(outcome, VersionConflict):
                return False
        self._ops[(owner_id, op)] = (_Withdrawn(sent), now + self._op_ttl_ms, "")
        return True

    async def now_ms(self) -> int:
        return self._clock()

    async def reap_orphans(
        self, *, full_pass: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Records and their ordering live in one dict here, so nothing can dangle."""
        if progress is not None:
            progress(0, 0)
        return 0

    async def _apply_write(self, w: checks.WriteRequest) -> int:
        return self._write(w)

    def _write(self, w: checks.WriteRequest) -> int:
        now = self._clock()
        replayed = self._replay(
            w.owner_id, w.op_id, w.op_name, w.expected_version, w.sent_at_ms, now
        )
        if replayed is not None:
            return int(replayed)
        entry = self._live(w.owner_id, w.task_id, now)
        current = entry.version if entry is not None else 0
        outcome: _Outcome
        if w.expected_version is not None and w.expected_version != current:
            current_data = entry.data if entry is not None else None
            outcome = VersionConflict(w.key, w.expected_version, current, current_data)
        elif (
            entry is None and w.capacity is not None and self._count(w.owner_id, now) >= w.capacity
        ):
            outcome = CapacityExceeded(w.owner_id, w.capacity)
        else:
            records = self._owners.setdefault(w.owner_id, {})
            created_at = entry.created_at_ms if entry is not None else (w.created_at_ms or now)
            records[w.task_id] = _Entry(w.data, current + 1, created_at, w.expires_at_ms)
            outcome = current + 1
        self._record_op(w.owner_id, w.op_id, w.op_name, outcome, now)
        if isinstance(outcome, StorageError):
            raise outcome
        return outcome

    def _live(self, owner_id: str, task_id: str, now: int) -> _Entry | None:
        entry = self._owners.get(owner_id, {}).get(task_id)
        return entry if entry is not None and entry.live(now) else None

    def _count(self, owner_id: str, now: int) -> int:
        return sum(e.live(now) for e in self._owners.get(owner_id, {}).values())

    def _ordered(self, owner_id: str, now: int) -> list[tuple[str, _Entry]]:
        live = [(t, e) for t, e in self._owners.get(owner_id, {}).items() if e.live(now)]
        live.sort(key=lambda item: (item[1].created_at_ms, _utf8(item[0])))
        return live

    def _replay(
        self,
        owner_id: str,
        op: str | None,
        name: str,
        expected: int | None,
        sent: int | None,
        now: int,
    ) -> int | bool | None:
        """The first outcome of ``op``; a conflict replays only for the same expected version,
        an op id bound to another operation raises ``OpIdReused``, and an attempt sent
        before the op id's withdrawal raises ``OpWithdrawn``."""
        if op is None:
            return None
        seen = self._ops.get((owner_id, op))
        if seen is None or seen[1] <= now:
            return None
        outcome, _, first = seen
        if isinstance(outcome, _Withdrawn):
            if sent is None or sent <= outcome.sent_at_ms:
                raise OpWithdrawn(op)
            return None
        if first != name:
            raise OpIdReused(op, first, name)
        if isinstance(outcome, VersionConflict) and outcome.expected != expected:
            return None
        if isinstance(outcome, StorageError):
            raise outcome
        return outcome

    def _record_op(
        self, owner_id: str, op: str | None, name: str, outcome: _Outcome, now: int
    ) -> None:
        if op is not None:
            self._ops[(owner_id, op)] = (outcome, now + self._op_ttl_ms, name)


def _utf8(task_id: str) -> bytes:
    """Ties in creation time sort by the id's UTF-8 bytes, as Redis sorts members."""
    return task_id.encode()
