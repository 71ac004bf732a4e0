"""Read, change, compare-and-swap: the one retry loop of every read-modify-write.

A change sees the record as stored and says what to write, or that nothing
changes. When another writer got there first, the change runs again on the
record the refusal carried (read anew if it carried none), after a jittered
exponential backoff, so contenders spread out instead of retrying in
lockstep. ``Updater`` and ``TaskStore`` both update records through it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

from store.backend import StorageBackend, VersionedRecord
from store.errors import VersionConflict


@dataclass(frozen=True, slots=True)
class Write:
    """What a change stores: the data and the ``put_if_version`` options that go with it."""

    data: bytes
    expires_at_ms: int | None = None
    op_id: str | None = None
    op_name: str | None = None
    sent_at_ms: int | None = None


Change = Callable[[VersionedRecord], Write | None]


def backoff_s(attempt: int, base_s: float = 0.0005, cap_s: float = 0.02) -> float:
    """Full-jitter exponential backoff before retry ``attempt`` (1, 2, ...)."""
    return random.uniform(0, min(cap_s, base_s * 2**attempt))


async def swap(
    backend: StorageBackend,
    key: str,
    change: Change,
    *,
    max_attempts: int,
    record: VersionedRecord | None = None,
) -> tuple[VersionedRecord, int | None]:
    """Store ``change(record)`` over the version it saw; the record it changed and the new version.

    The version is None when the change wrote nothing. ``NotFound`` when there
    is no record; the last ``VersionConflict`` after ``max_attempts`` refusals,
    or at once when the record went away meanwhile (``actual`` 0).
    """
    current = record if record is not None else await backend.get(key)
    attempt = 0
    while True:
        write = change(current)
        if write is None:
            return current, None
        try:
            version = await backend.put_if_version(
                key,
                write.data,
                current.version,
                expires_at_ms=write.expires_at_ms,
                op_id=write.op_id,
                op_name=write.op_name,
                sent_at_ms=write.sent_at_ms,
            )
        except VersionConflict as conflict:
            attempt += 1
            if attempt >= max_attempts or conflict.actual == 0:
                raise
            await asyncio.sleep(backoff_s(attempt))
            current = (
                VersionedRecord(conflict.current_data, conflict.actual)
                if conflict.current_data is not None
                else await backend.get(key)
            )
            continue
        return current, version
