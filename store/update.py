"""Read-transform-CAS updates that stay fast on a hot key.

Concurrent updates of one key in one process are combined: while one CAS of
the key is in flight, later updates queue behind it, and the next CAS applies
them in order. Only updates with the same ``expires_at_ms`` share a CAS, so
each caller's expiry is the one its update is stored with; an update asking
for another expiry starts the next CAS. Every transform is applied exactly
once, in the order the updates were made. Conflicts with other processes are
retried by ``store.cas.swap``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from store.backend import StorageBackend, VersionedRecord
from store.cas import Write, swap
from store.errors import StorageError

Transform = Callable[[bytes], bytes]


@dataclass
class _Update:
    transform: Transform
    expires_at_ms: int | None
    done: asyncio.Future[int]


@dataclass
class _Queue:
    waiting: list[_Update] = field(default_factory=list)


class Updater:
    """``await updater.update(key, transform)``: the new version once ``transform`` is stored."""

    def __init__(self, backend: StorageBackend, *, max_attempts: int = 1000) -> None:
        self.backend = backend
        self.max_attempts = max_attempts
        self._queues: dict[str, _Queue] = {}

    async def update(
        self, key: str, transform: Transform, *, expires_at_ms: int | None = None
    ) -> int:
        """Store ``transform(data)`` of the record at ``key`` (``NotFound`` if absent)."""
        update = _Update(transform, expires_at_ms, asyncio.get_running_loop().create_future())
        queue = self._queues.get(key)
        if queue is not None:
            queue.waiting.append(update)
            return await update.done
        queue = self._queues[key] = _Queue([update])
        try:
            await self._lead(key, queue)
        except Exception as exc:
            _fail(queue.waiting, exc)
        except BaseException:
            _fail(queue.waiting, StorageError(f"update of {key!r} abandoned: its leader stopped"))
            raise
        finally:
            del self._queues[key]
        return await update.done

    async def _lead(self, key: str, queue: _Queue) -> None:
        """CAS the queued updates until none is left; newcomers join a later CAS."""
        record: VersionedRecord | None = None
        while queue.waiting:
            batch = _Batch.leading(queue.waiting)
            record, version = await swap(
                self.backend, key, batch.change, max_attempts=self.max_attempts, record=record
            )
            del queue.waiting[: len(batch.updates)]
            if version is None:  # every transform of the batch failed
                continue
            for update in batch.applied:
                update.done.set_result(version)
            record = VersionedRecord(batch.written, version)


@dataclass
class _Batch:
    """The leading updates that ask for one expiry: one CAS stores them all."""

    updates: list[_Update]
    applied: list[_Update] = field(default_factory=list)
    written: bytes = b""

    @classmethod
    def leading(cls, waiting: list[_Update]) -> _Batch:
        expires = waiting[0].expires_at_ms
        updates = []
        for update in waiting:
            if update.expires_at_ms != expires:
                break
            updates.append(update)
        return cls(updates)

    def change(self, current: VersionedRecord) -> Write | None:
        """Every transform still standing, in order, on the record as stored now."""
        self.applied.clear()
        data = current.data
        for update in self.updates:
            if update.done.done():
                continue  # its transform failed on an earlier attempt
            try:
                data = update.transform(data)
                self.applied.append(update)
            except Exception as exc:  # the caller's transform: its error is its own
                update.done.set_exception(exc)
        self.written = data
        return Write(data, self.updates[0].expires_at_ms) if self.applied else None


def _fail(waiting: list[_Update], exc: BaseException) -> None:
    for update in waiting:
        if not update.done.done():
            update.done.set_exception(exc)
