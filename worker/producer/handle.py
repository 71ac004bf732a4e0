"""Waiting for a job's outcome until it is definite, and the handle a caller holds.

A job is enqueued with a deadline (``REPLY_TIMEOUT_S`` from the moment it is
sent). Until then the caller waits for the reply. At the deadline the client
settles the job in one atomic step (``settle.lua``):

- never started, or no longer known to the queue: it is withdrawn from the
  queue, so it can never run from there. That alone does not prove its writes
  were not applied: a queue Redis that failed over or restarted may have lost
  the job after a worker ran it, and a worker may still hold it. So each
  write's op id is withdrawn in the store too (``StorageBackend.withdraw_op``):
  one that was applied gives its outcome, exactly as sending it again would;
  one that was not is fenced, so that no copy of this attempt can ever apply,
  and its caller gets ``DeadlineExceeded``, or ``NoWorkerAlive`` when no worker
  has sent a heartbeat lately.
- started (running, or waiting to be run again after its worker died): the
  caller waits on, a lease at a time, across the re-run, for at most
  ``JOB_TIMEOUT_S`` plus two leases; then ``OutcomeUnknown`` names the op id.

Once the job is on the queue, a queue Redis that is away (a failover, a
restart) is waited out until then too, so every caller gets an outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from arq.connections import ArqRedis

from store import BackendError
from worker.producer.coalesce import Batch
from worker.producer.queue import back_off, finished_reply, settle, wait_reply
from worker.producer.replies import SharedReplies
from worker.protocol.envelope import Elided, Envelope, open_envelope
from worker.protocol.errors import OutcomeUnknown
from worker.protocol.settings import Settings

T = TypeVar("T")


class ReplyTimeout(TimeoutError):
    """``result(timeout_s)`` gave up before the job was settled; the write is still pending."""

    def __init__(self, job_id: str, timeout_s: float) -> None:
        super().__init__(f"no reply for job {job_id} within {timeout_s} s; it is still pending")
        self.job_id = job_id


class Withdrawn(Exception):
    """The queue holds the job no more: it never started, or the queue lost it."""

    def __init__(self, no_worker: bool) -> None:
        super().__init__("withdrawn")
        self.no_worker = no_worker


class Open(Exception):
    """The job started and did not answer in time."""


async def await_job(
    pool: ArqRedis, settings: Settings, job_id: str, replies: SharedReplies | None = None
) -> Any:
    """The job's reply; ``Withdrawn`` or ``Open`` when it settles without one. With
    ``replies``, the job named its producer's reply list (``reply_to``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.reply_timeout_s
    give_up = deadline + settings.job_timeout_s + 2 * settings.lease_s
    away = 0
    listen = replies  # None once the reply is on the job's own list
    try:
        while True:
            try:
                wait = max(deadline - loop.time(), 0.01)
                if listen is not None:
                    reply = await listen.wait(job_id, wait)
                else:
                    reply = await wait_reply(pool, settings.queue_name, job_id, wait)
                if reply is not None:
                    return reply
                state = await settle(pool, settings.queue_name, job_id)
            except BackendError:
                if loop.time() >= give_up:
                    raise Open() from None
                away += 1
                await back_off(away)  # the queue Redis is away
                continue
            away = 0
            if state.startswith("withdrawn"):
                raise Withdrawn(no_worker=state == "withdrawn-no-worker")
            if state == "replied":  # on a list of its own: refused, or a job that named none
                listen = None
            elif state == "finished" and listen is not None:
                # Its reply went onto the producer's list; the result record keeps it too.
                reply = await finished_reply(pool, job_id)
                if reply is not None:
                    return reply
                raise Open()
            elif state == "finished" or (state == "started" and loop.time() >= give_up):
                raise Open()
            # Replied meanwhile, or started: wait on, a lease at a time.
            deadline = min(loop.time() + settings.lease_s, give_up)
    finally:
        if replies is not None:
            replies.forget(job_id)


class JobHandle(Generic[T]):
    """An enqueued write; ``await handle.result()`` gives its outcome or raises its error.

    ``job_id`` is the arq job that carries the write (shared by the writes
    coalesced with it); ``op_id`` is the write's own. ``retry()`` sends the same
    write again under the same op id: if it was applied, that returns its first
    outcome, else it applies it now; never twice. ``withdraw`` settles the
    handle's writes in the store when the queue no longer holds their job.
    """

    def __init__(
        self,
        batch: Batch,
        job_id: str,
        op_id: str,
        index: int | None,
        decode: Callable[[Any], T],
        resend: Callable[[], Awaitable[JobHandle[T]]],
        withdraw: Callable[[int, bool], Awaitable[Envelope]],
        replay: Callable[[], Awaitable[Envelope]],
    ) -> None:
        self.job_id = job_id
        self.op_id = op_id
        self._batch, self._index = batch, index
        self._decode = decode
        self._resend = resend
        self._withdraw = withdraw
        self._replay = replay

    async def result(self, timeout_s: float | None = None) -> T:
        """The outcome, once the job is settled; ``ReplyTimeout`` if ``timeout_s`` ends first."""
        index = self._index
        try:
            reply = await asyncio.wait_for(asyncio.shield(self._batch.reply), timeout_s)
        except Withdrawn as exc:
            # This handle's writes alone, in order: a single write is the first.
            reply = await self._withdraw(self._batch.sent_at_ms, exc.no_worker)
            index = None if index is None else 0
        except Open:
            raise OutcomeUnknown(self.op_id, self.job_id) from None
        except TimeoutError:
            if self._batch.reply.done():
                raise
            raise ReplyTimeout(self.job_id, timeout_s or 0) from None
        try:
            value = open_envelope(reply)
            if index is not None:
                value = open_envelope(value[index])
            return self._decode(value)
        except Elided:  # applied, and its reply had no room for the outcome: read it
            return self._decode(open_envelope(await self._replay()))

    async def retry(self) -> JobHandle[T]:
        """Send the write again, alone, under the same op id; a handle to the new job."""
        return await self._resend()
