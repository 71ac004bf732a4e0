"""Everything taskstore relies on of arq beyond its public settings class, in one place.

The batch path claims, runs and finishes write jobs itself, so that a job
costs a few commands instead of arq's twenty; it must still look to every
producer, to ``arq worker.runtime.main.WorkerSettings`` and to arq's own path (cron,
durable tools) exactly as arq's jobs do. It relies on these behaviours of
arq 0.28, each pinned by ``tests/worker/test_arq_internals.py`` so that an
upgrade that changes one fails there and nowhere else:

1. **Keys.** A job is its record at ``arq:job:<id>`` plus its id in the
   queue's sorted set, scored by the time (ms) it may start; a started job
   holds ``arq:in-progress:<id>`` (its claim), counts its tries in
   ``arq:retry:<id>`` (kept ``RETRY_KEEP_S``), and leaves its result at
   ``arq:result:<id>``.
2. **Records.** A job record is the job serializer's bytes of ``{"t", "f",
   "a", "k", "et"}``; a result is what ``arq.jobs.serialize_result`` makes,
   which ``Job.result()`` and ``Job.info()`` of arq-speaking producers read.
3. **The poll.** ``Worker._poll_iteration`` asks its pool's
   ``zrangebyscore(queue, ...)`` for the ready job ids, then claims each in
   ``start_jobs`` with WATCH, EXISTS and ZSCORE, then a MULTI whose PSETEX
   sets the claim for the longest job timeout plus 10 s. When the connection
   drops after WATCH, redis-py raises ``WatchError`` from EXISTS or ZSCORE,
   which ``start_jobs`` does not catch.
4. **The finish.** ``run_job`` stores a result with ``SET arq:result:<id>``
   and defers a ``Retry`` with ``ZINCRBY`` on the queue, each in a MULTI of a
   pipeline it gets from ``pool.pipeline()``; ``enqueue_job`` (the cron
   runs' way onto the queue) adds a job with ``ZADD`` in such a MULTI too.
5. **The pool.** A ``redis_pool`` given in the settings class is the
   worker's pool as it is, under both entry points (arq's CLI builds a plain
   ``Worker`` from the class); jobs see it as ``ctx["redis"]``, with their id
   and try as ``ctx["job_id"]`` and ``ctx["job_try"]``.
6. **Its clock.** arq reads this machine's wall clock (``timestamp_ms``): for
   the score ``enqueue_job`` gives a job, and in ``start_jobs``, which skips a
   job whose ``ZSCORE`` is later than that clock.

``QueuePool`` is that pool: arq's poll gets from it only the jobs the batch
path leaves to arq (``arq_poll``), and its pipelines (``ClaimPipeline``) turn
arq's claim into a lease, let ``on_finish`` count arq's finished jobs, wake
the idle batch path when arq enqueues a job (a cron run, due soon), and turn
the times arq reads and writes into the queue's clock (``QueueClock``): a
score arq adds is moved onto the queue's clock, and a score arq reads is
given back on this machine's, so what is ready is the queue's to say.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from arq.connections import ArqRedis
from arq.constants import (
    in_progress_key_prefix,
    result_key_prefix,
)
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from worker.protocol.serialization import serialize
from worker.runtime.queue_clock import QueueClock

RETRY_KEEP_S = 88_400
"""How long arq keeps a job's try count (``run_job``'s EXPIRE)."""

FinishHook = Callable[[Pipeline, str, bytes | None], None]
"""Called with arq's MULTI that finishes job ``job_id``, to add commands to it: with
arq's result as stored, or None when the job is deferred for a retry."""


def result_record(
    job_id: str,
    queue_name: str,
    job: dict[str, Any],
    job_try: int,
    success: bool,
    result: bytes,
    started_ms: int,
    finished_ms: int,
) -> bytes:
    """A finished job's result, as arq stores it for ``Job.result()`` and ``Job.info()``:
    the fields of ``arq.jobs.serialize_result``, with ``result`` as it was encoded already
    (a reply, or an error), so a large reply is not encoded twice."""
    head = serialize(
        {
            "s": success,
            "t": job_try,
            "f": str(job.get("f")),
            "a": list(job.get("a") or ()),
            "k": dict(job.get("k") or {}),
            "et": whole_ms(job.get("et")) or 0,
        }
    )
    tail = serialize({"st": started_ms, "ft": finished_ms, "q": queue_name, "id": job_id})
    return b"".join((head[:-1], b',"r":', result, b",", tail[1:]))


def whole_ms(value: object) -> int | None:
    """A time a job gives (its ``et``), when it is a whole number of ms that fits a double."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or not 0 <= value < 2**53 or value != int(value):
        return None
    return int(value)


class QueuePool(ArqRedis):
    """arq's Redis client for a worker: its poll sees only arq's jobs; claims are leases.

    ``arq_poll`` (set by the batch path when the worker starts) answers arq's
    poll with the ready jobs the batch path leaves to arq, waiting for some
    to turn up; without it the poll reads the queue as arq's own does.
    """

    lease_ms: int = 5000
    wake_key: str = ""
    on_finish: FinishHook | None = None
    arq_poll: Callable[[], Awaitable[list[bytes]]] | None = None
    clock: QueueClock

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = ClaimPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.lease_ms, pipe.queue_name = self.lease_ms, self.default_queue_name
        pipe.wake_key, pipe.on_finish, pipe.clock = self.wake_key, self.on_finish, self.clock
        return pipe

    async def zrangebyscore(self, name: Any, *args: Any, **kwargs: Any) -> Any:
        if name == self.default_queue_name and self.arq_poll is not None:
            return await self.arq_poll()
        return await super().zrangebyscore(name, *args, **kwargs)


class ClaimPipeline(Pipeline):
    """The pipeline arq claims and finishes its own jobs with.

    arq's claim PSETEX sets a lease of ``lease_ms`` instead of the job timeout
    plus 10 s, which the running job renews (``liveness.lease``), so a worker
    that dies right after claiming holds the job no longer than one lease. A
    ``WatchError`` from EXISTS or ZSCORE after a dropped connection answers as
    if another worker held the job, so arq skips it (instead of ending its
    loop) and the next poll claims it on a fresh connection. ``on_finish``
    adds its commands to the MULTI that finishes a job. Scores cross between
    arq's clock (this machine's) and the queue's through ``clock``.
    """

    lease_ms: int = 5000
    queue_name: str = ""
    wake_key: str = ""
    on_finish: FinishHook | None = None
    clock: QueueClock

    def zadd(self, name: Any, mapping: Any, *args: Any, **kwargs: Any) -> Any:
        """arq enqueues a job (a cron run): its score onto the queue's clock, and a wake-up
        for the idle poll so it sees when that is due."""
        if name != self.queue_name:
            return super().zadd(name, mapping, *args, **kwargs)
        moved = {job: self.clock.from_local_ms(score) for job, score in mapping.items()}
        queued = super().zadd(name, moved, *args, **kwargs)
        if self.wake_key:
            super().lpush(self.wake_key, 1)
        return queued

    def set(self, name: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        queued = super().set(name, value, *args, **kwargs)
        if self.on_finish is not None and str(name).startswith(result_key_prefix):
            self.on_finish(self, str(name)[len(result_key_prefix) :], value)
        return queued

    def zincrby(self, name: Any, amount: float, value: Any) -> Any:
        queued = super().zincrby(name, amount, value)
        if self.on_finish is not None and name == self.queue_name:
            self.on_finish(self, str(value), None)
        return queued

    def psetex(self, name: Any, time_ms: Any, value: Any) -> Any:
        if isinstance(name, str) and name.startswith(in_progress_key_prefix):
            time_ms = self.lease_ms
        return super().psetex(name, time_ms, value)

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            found = await super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except WatchError:
            if args[0] == "EXISTS":
                return 1
            if args[0] == "ZSCORE":
                return None
            raise
        if args[0] == "ZSCORE" and args[1] == self.queue_name and found is not None:
            # arq looks only at jobs the batch path found ready by the queue's clock: a
            # reading of that clock a round trip old must not make one look not yet due.
            # arq compares it with whole ms: a fraction above now would read as later.
            return min(self.clock.to_local_ms(float(found)), time.time_ns() // 1_000_000)
        return found


def queue_pool(
    pool: QueuePool,
    queue_name: str,
    serializer: Any,
    deserializer: Any,
    lease_s: float,
    wake_key: str,
    clock: QueueClock,
    on_finish: FinishHook | None = None,
) -> QueuePool:
    """The worker's pool (see ``worker.protocol.connections.queue_client``), set up as
    ``arq.connections.create_pool`` sets up its own."""
    pool.job_serializer = serializer
    pool.job_deserializer = deserializer
    pool.default_queue_name = queue_name
    pool.lease_ms = int(lease_s * 1000)
    pool.wake_key = wake_key
    pool.on_finish = on_finish
    pool.clock = clock
    return pool
