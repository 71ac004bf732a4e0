"""Client-side coalescing: writes issued close together travel as one ``ops`` job.

A write joins the open batch; the batch is sent on the next turn of the event
loop (``window_s`` 0), after ``window_s``, or as soon as it holds ``max_ops``
writes; a write that would take it past ``max_bytes`` starts the next batch.
Each write joins already encoded (so one that does not encode fails alone, in
its caller), and the job's payload is those pieces joined. A write
sent alone (``coalesce=False``, a batch of ``apply_batch``) is a batch of its
own under a job id of the caller's choosing. One wait per batch serves every
write in it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[str, bytes, int], Awaitable[int]]
"""Enqueue an ``ops`` job: its id, its list of writes (JSON) and how many they are; when
the queue took it (its ``qt``, ms by the queue's clock)."""
Wait = Callable[[str], Awaitable[Any]]
"""The reply of a job by id, or the exception that settles it without one."""


class Batch:
    """Writes that travel together; ``enqueued`` gives the job id, ``reply`` its reply,
    ``sent_at_ms`` when the queue took the job (its ``qt``)."""

    def __init__(self, ops: list[bytes] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.ops: list[bytes] = ops or []
        self.size = sum(len(op) + 1 for op in self.ops)
        self.sent_at_ms = 0
        self.enqueued: asyncio.Future[str] = loop.create_future()
        self.reply: asyncio.Future[Any] = loop.create_future()

    def encoded(self) -> bytes:
        return b"[" + b",".join(self.ops) + b"]"


class Coalescer:
    def __init__(
        self, send: Send, wait: Wait, window_s: float, max_ops: int, max_bytes: int
    ) -> None:
        self._send, self._wait = send, wait
        self._window_s, self._max_ops, self._max_bytes = window_s, max_ops, max_bytes
        self._open: Batch | None = None
        self._timer: asyncio.Handle | None = None
        self._flights: set[asyncio.Task[None]] = set()

    def add(self, encoded: bytes) -> tuple[Batch, int]:
        """Join the open batch with one encoded write; the batch and the write's place in it."""
        batch = self._open
        if batch is not None and batch.size + len(encoded) + 1 > self._max_bytes:
            self.flush()
            batch = None
        if batch is None:
            batch = self._open = Batch()
            loop = asyncio.get_running_loop()
            self._timer = (
                loop.call_later(self._window_s, self.flush)
                if self._window_s > 0
                else loop.call_soon(self.flush)
            )
        batch.ops.append(encoded)
        batch.size += len(encoded) + 1
        if len(batch.ops) >= self._max_ops:
            self.flush()
        return batch, len(batch.ops) - 1

    def alone(self, ops: list[bytes], job_id: str) -> Batch:
        """Send these writes now, as a job of their own under ``job_id``."""
        batch = Batch(ops)
        self._fly(batch, job_id)
        return batch

    def flush(self) -> None:
        """Send the open batch now."""
        batch, self._open = self._open, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if batch is not None:
            self._fly(batch, uuid.uuid4().hex)

    def _fly(self, batch: Batch, job_id: str) -> None:
        flight = asyncio.get_running_loop().create_task(self._flight(batch, job_id))
        self._flights.add(flight)
        flight.add_done_callback(self._flights.discard)

    async def _flight(self, batch: Batch, job_id: str) -> None:
        try:
            batch.sent_at_ms = await self._send(job_id, batch.encoded(), len(batch.ops))
            batch.enqueued.set_result(job_id)
            batch.reply.set_result(await self._wait(job_id))
        except asyncio.CancelledError:
            _settle(batch, ConnectionAbortedError("the client was closed"))
            raise
        except Exception as exc:
            _settle(batch, exc)

    async def aclose(self) -> None:
        """Send what is open and stop waiting for replies."""
        self.flush()
        for flight in list(self._flights):
            flight.cancel()
        await asyncio.gather(*self._flights, return_exceptions=True)


def _settle(batch: Batch, exc: Exception) -> None:
    """Fail what the batch has not answered yet."""
    for future in (batch.enqueued, batch.reply):
        if not future.done():
            future.set_exception(exc)
            future.exception()  # retrieved: a write nobody awaits is not an error to report
