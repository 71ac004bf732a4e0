"""The storage contract every backend fulfils.

A backend is a dumb versioned key-value store: it knows owners only as the
first half of a key, and nothing of the task records it holds. Times are
integer milliseconds since the epoch; "expired" means "absent" for every
operation, judged by the backend's own clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from store.errors import StorageError


@dataclass(frozen=True, slots=True)
class VersionedRecord:
    """A record's bytes and its version (1 on creation, +1 per write)."""

    data: bytes
    version: int


@dataclass(frozen=True, slots=True)
class Page:
    """One page of an owner's records, newest first; ``next_cursor`` is None on the last."""

    items: list[tuple[str, VersionedRecord]] = field(default_factory=list)
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class BatchOp:
    """One put (``expected_version`` None) or CAS of a batch, with the same parameters."""

    key: str
    data: bytes
    expected_version: int | None = None
    expires_at_ms: int | None = None
    created_at_ms: int | None = None
    op_id: str | None = None
    max_records_per_owner: int | None = None
    sent_at_ms: int | None = None


BatchOutcome = int | StorageError


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What the store holds, read without walking the keyspace.

    ``owners`` and ``records`` cover owners with a record that expires (every
    task expires); ``owners_due`` is how many of them hold a record that has
    expired and waits for the sweep.
    """

    owners: int
    records: int
    owners_due: int


@runtime_checkable
class StorageBackend(Protocol):
    """Async storage contract; see the table in README.md for the edge cases."""

    async def get(self, key: str) -> VersionedRecord:
        """The live record at ``key``; ``NotFound`` if absent or expired."""
        ...

    async def put(
        self,
        key: str,
        data: bytes,
        *,
        expires_at_ms: int | None = None,
        created_at_ms: int | None = None,
        op_id: str | None = None,
        max_records_per_owner: int | None = None,
        op_name: str | None = None,
        sent_at_ms: int | None = None,
    ) -> int:
        """Create (version 1) or overwrite (version + 1); return the new version.

        With ``op_id``, running the operation again returns its first outcome
        and changes nothing; a ``VersionConflict`` replays only for the same
        expected version, so a read-and-retry loop may keep its op id. The op
        id is bound to ``op_name`` (default: the method's name): under another
        operation it raises ``OpIdReused`` and changes nothing. ``sent_at_ms``
        is when the caller sent this attempt; see ``withdraw_op``.

        ``created_at_ms`` orders the owner's listing and applies only when the
        put creates the key. ``max_records_per_owner`` refuses a new key with
        ``CapacityExceeded`` when the owner already holds that many live records.
        """
        ...

    async def put_if_version(
        self,
        key: str,
        data: bytes,
        expected_version: int,
        *,
        expires_at_ms: int | None = None,
        created_at_ms: int | None = None,
        op_id: str | None = None,
        op_name: str | None = None,
        sent_at_ms: int | None = None,
    ) -> int:
        """Write only if the live version is ``expected_version``, else ``VersionConflict``."""
        ...

    async def delete(
        self, key: str, *, op_id: str | None = None, sent_at_ms: int | None = None
    ) -> bool:
        """Remove the record and its index entries; True if a live record was removed."""
        ...

    async def withdraw_op(self, owner_id: str, op_id: str, sent_at_ms: int) -> bool:
        """Make sure an op id that was not applied never is, by any attempt sent by then.

        True: nothing was applied under ``op_id`` (a kept ``VersionConflict``
        counts as nothing), and from now on every write under it whose
        ``sent_at_ms`` is None or at most this one's raises ``OpWithdrawn``,
        changing nothing; an attempt sent later is a new one. False: an outcome
        is kept for it, and running the operation again under the op id replays
        it. The op id is ``owner_id``'s, as a write's is its key's owner's.
        This is how a caller that gave up waiting on a queued write learns the
        truth, even when the queue lost the job or a worker still holds it.
        """
        ...

    async def list_by_prefix(self, prefix: str) -> list[tuple[str, VersionedRecord]]:
        """Every live record of one owner (``make_prefix(owner)``), oldest first."""
        ...

    async def list_page(self, owner_id: str, cursor: str | None = None, limit: int = 50) -> Page:
        """One page of an owner's live records, newest first, from an opaque cursor."""
        ...

    async def count(self, owner_id: str) -> int:
        """The owner's live records, expired ones excluded."""
        ...

    async def cleanup_expired(self) -> int:
        """Remove expired records and their index entries; return how many."""
        ...

    async def reap_orphans(
        self, *, full_pass: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Repair index entries that disagree with the records; return how many.

        One bounded step by default, resuming where the last left off, so a
        periodic job stays short; ``full_pass`` goes on until every key has
        been looked at, calling ``progress(keys_checked, repaired)`` as it goes.
        """
        ...

    async def stats(self, progress: Callable[[int, int], None] | None = None) -> StoreStats:
        """Owners, live records and owners due for the sweep.

        The cost follows the owners, not the keyspace; ``progress(done, total)``
        hears about each chunk of owners counted.
        """
        ...

    async def applied_version(self, key: str, op_id: str) -> int | None:
        """The version a put or CAS under ``op_id`` wrote, or None if none succeeded.

        Lets a caller that validates before writing (the task domain) recognise
        an operation that was already applied before a worker died.
        """
        ...

    async def now_ms(self) -> int:
        """The clock this backend judges expiry by (ms since the epoch): a Redis server's
        ``TIME``, the in-memory backend's clock. Processes that compare times kept in the
        store (runner leases) read this one clock rather than each its own."""
        ...

    async def apply_batch(self, ops: Sequence[BatchOp]) -> list[BatchOutcome]:
        """Run many puts and CAS ops in one go; each keeps its own outcome.

        An outcome is the new version or the ``StorageError`` that op alone
        would have raised; the ops are independent, not one transaction.
        """
        ...

    async def aclose(self) -> None:
        """Release connections and anything the backend started."""
        ...
