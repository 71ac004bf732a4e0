"""Read-transform-CAS updates that stay fast on a hot key.

Concurrent updates of one key in one process are combined: while one CAS of
the key is in flight, later updates queue behind it, and the next CAS applies
all of them in order. Every transform is applied exactly once, in the order
the updates were made. Conflicts with other processes are retried with
jittered exponential backoff, starting from the record the refusal carried,
so contenders spread out instead of retrying in lockstep.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from store.backend import StorageBackend, VersionedRecord
from store.errors import StorageError, VersionConflict

Transform = Callable[[bytes], bytes]


def backoff_s(attempt: int, base_s: float = 0.0005, cap_s: float = 0.02) -> float:
    """Full-jitter exponential backoff before retry ``attempt`` (1, 2, ...)."""
    return random.uniform(0, min(cap_s, base_s * 2**attempt))


@dataclass
class _Queue:
    waiting: list[tuple[Transform, asyncio.Future[int]]] = field(default_factory=list)


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
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is not None:
            queue.waiting.append((transform, done))
            return await done
        queue = self._queues[key] = _Queue([(transform, done)])
        try:
            await self._lead(key, queue, expires_at_ms)
        except Exception as exc:
            _fail(queue.waiting, exc)
        except BaseException:
            _fail(queue.waiting, StorageError(f"update of {key!r} abandoned: its leader stopped"))
            raise
        finally:
            del self._queues[key]
        return await done

    async def _lead(self, key: str, queue: _Queue, expires_at_ms: int | None) -> None:
        """CAS the queued transforms until none is left; newcomers join the next CAS."""
        record = await self.backend.get(key)
        attempt = 0
        while queue.waiting:
            data = record.data
            applied: list[tuple[Transform, asyncio.Future[int]]] = []
            for transform, waiter in queue.waiting:
                try:
                    data = transform(data)
                    applied.append((transform, waiter))
                except Exception as exc:  # the caller's transform: its error is its own
                    waiter.set_exception(exc)
            queue.waiting[:] = applied  # nothing awaited since reading queue.waiting
            if not applied:
                return
            try:
                version = await self.backend.put_if_version(
                    key, data, record.version, expires_at_ms=expires_at_ms
                )
            except VersionConflict as conflict:
                attempt += 1
                if attempt >= self.max_attempts or conflict.actual == 0:
                    raise
                await asyncio.sleep(backoff_s(attempt))
                record = (
                    VersionedRecord(conflict.current_data, conflict.actual)
                    if conflict.current_data is not None
                    else await self.backend.get(key)
                )
                continue
            attempt = 0
            for _, waiter in applied:
                waiter.set_result(version)
            del queue.waiting[: len(applied)]
            record = VersionedRecord(data, version)


def _fail(waiting: list[tuple[Transform, asyncio.Future[int]]], exc: BaseException) -> None:
    for _, waiter in waiting:
        if not waiter.done():
            waiter.set_exception(exc)
