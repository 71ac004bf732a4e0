"""The queue as both sides see it: one-round-trip enqueue, replies, wake-up, settling.

A job is arq's JSON record under ``arq:job:<id>`` plus its id in a sorted set:
``<queue>:writes`` for write jobs, ``<queue>`` for the rest. ``enqueue.lua``
(PROTOCOL.md: every producer's way in) checks its shape, stamps it with the
queue's time, writes both in one step, leaves an id that is already queued or
answered alone, and pushes a token on ``<queue>:wake``. An idle worker blocks
on that list instead of polling (``worker.runtime.batch``), so it costs Redis
a few commands a second and still starts a job a round trip after it is
enqueued. A client enqueues through ``Sender``, which keeps its jobs in the
order they were sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from arq.connections import ArqRedis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from store import BackendError, InvalidArgument
from worker.protocol import version as protocol
from worker.protocol.keys import ALIVE_S, QueueKeys, job_keys
from worker.protocol.scripts import (
    ENQUEUE,
    SETTLE,
    EnqueueArgs,
    Enqueued,
    EnqueueKeys,
    SettleArgs,
    SettleKeys,
)
from worker.protocol.serialization import deserialize


def job_payload(
    function: str,
    args: bytes,
    kwargs: bytes,
    trace: Mapping[str, str] | None = None,
    *,
    wait_ms: int | None = None,
    reply_to: str | None = None,
) -> bytes:
    """A job (arq's record and the protocol's version), from the JSON of its arguments;
    with ``trace``, the W3C trace context it continues (``tc``); with ``wait_ms``, how long
    its producer waits for it, after which no worker applies it; with ``reply_to``, the
    producer's reply list its reply goes to."""
    head: dict[str, Any] = {"v": protocol.VERSION, "f": function, "et": time.time_ns() // 10**6}
    if wait_ms is not None:
        head["wait_ms"] = wait_ms
    if reply_to is not None:
        head["reply_to"] = reply_to
    if trace:
        head["tc"] = dict(trace)
    fields = json.dumps(head)
    return b"".join((fields[:-1].encode(), b',"a":', args, b',"k":', kwargs, b"}"))


def enqueue_keys(queue_name: str, job_id: str) -> EnqueueKeys:
    """The KEYS of ``enqueue.lua`` for one job."""
    job, queue = job_keys(job_id), QueueKeys(queue_name)
    return EnqueueKeys(
        job.job, job.result, queue_name, queue.writes, queue.wake, queue.reply(job_id)
    )


def _enqueued(job_id: str, reply: Any) -> Enqueued:
    """The enqueue script's typed reply, or the error it answered raised as ours."""
    if isinstance(reply, ResponseError) and "taskstore:" in str(reply):
        raise InvalidArgument(str(reply).partition("taskstore: ")[2])
    if isinstance(reply, Exception):
        raise BackendError(None, f"enqueueing job {job_id}: {reply}") from reply
    return ENQUEUE.decode(reply)


async def enqueue(
    pool: ArqRedis, queue_name: str, job_id: str, payload: bytes, *, resend_qt: int | None = None
) -> Enqueued:
    """Put one job on the queue; ``added`` is 0 when that id was already queued, running or
    answered. ``resend_qt``: the job sends again an attempt the queue first took then."""
    args = EnqueueArgs(job_id, payload, "" if resend_qt is None else resend_qt)
    try:
        return await ENQUEUE.run(pool, enqueue_keys(queue_name, job_id), args)
    except RedisError as exc:
        return _enqueued(job_id, exc)


class Sender:
    """Enqueues a client's jobs in the order they were sent.

    The jobs sent in one turn of the event loop go in one pipeline, and the next
    pipeline only after it: Redis runs a pipeline's calls in order, and the
    enqueue script scores each job after the last, so the queue holds them in
    the order they were sent, and so their writes apply.
    """

    def __init__(self, pool: ArqRedis, queue_name: str) -> None:
        self._pool, self._queue = pool, queue_name
        self._pending: list[tuple[str, bytes, asyncio.Future[Enqueued]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def send(self, job_id: str, payload: bytes) -> Enqueued:
        """Enqueue one job (see ``enqueue``), after every job sent before it."""
        loop = asyncio.get_running_loop()
        sent: asyncio.Future[Enqueued] = loop.create_future()
        self._pending.append((job_id, payload, sent))
        if self._flushing is None or self._flushing.done():
            self._flushing = loop.create_task(self._flush())
        return await sent

    async def _flush(self) -> None:
        while self._pending:
            jobs, self._pending = self._pending, []
            try:
                replies = await self._pipelined(jobs)
            except RedisError as exc:
                replies = [exc] * len(jobs)
            for (job_id, _, sent), reply in zip(jobs, replies, strict=True):
                if sent.done():  # its caller stopped waiting; the job went all the same
                    continue
                try:
                    sent.set_result(_enqueued(job_id, reply))
                except (InvalidArgument, BackendError) as exc:
                    sent.set_exception(exc)

    async def _pipelined(self, jobs: Sequence[tuple[str, bytes, Any]]) -> list[Any]:
        """Each job's raw reply; a server that forgot the script is sent it, then the rest."""
        replies: list[Any] = []
        todo = list(jobs)
        for attempt in range(2):
            async with self._pool.pipeline(transaction=False) as pipe:
                for job_id, payload, _ in todo:
                    keys = enqueue_keys(self._queue, job_id)
                    pipe.execute_command(
                        "EVALSHA",
                        ENQUEUE.sha,
                        *ENQUEUE.arguments(keys, EnqueueArgs(job_id, payload)),
                    )
                got: list[Any] = await pipe.execute(raise_on_error=False)
            first = next((i for i, r in enumerate(got) if isinstance(r, NoScriptError)), None)
            if first is None or attempt:
                return replies + got
            replies += got[:first]
            todo = todo[first:]
            await self._pool.script_load(ENQUEUE.source)
        raise AssertionError("unreachable")


async def back_off(away: int) -> None:
    """Wait before trying the queue Redis again, the ``away``-th time in a row it failed."""
    await asyncio.sleep(min(0.05 * 2**away, 1.0))


async def wait_reply(pool: ArqRedis, queue_name: str, job_id: str, timeout_s: float) -> Any:
    """The job's reply (decoded JSON), or None when none came within ``timeout_s``.

    BLMOVE onto itself leaves the reply in place until it expires, so waiting
    twice, or re-sending the same op id, still finds it.
    """
    key = QueueKeys(queue_name).reply(job_id)
    redis: Any = pool
    try:
        reply = await redis.blmove(key, key, timeout_s, "RIGHT", "LEFT")
    except RedisError as exc:
        raise BackendError(None, f"waiting for job {job_id}: {exc}") from exc
    return None if reply is None else deserialize(reply)


async def finished_reply(pool: ArqRedis, job_id: str) -> Any:
    """The reply of a finished job as arq's record of it keeps it (``r``), or None: the
    record expired, or holds why the job failed instead. For a job whose reply went onto
    its producer's reply list and was lost on the way (a connection dropped mid-read)."""
    try:
        record = await pool.get(job_keys(job_id).result)
        reply = deserialize(record).get("r") if record is not None else None
    except (RedisError, ValueError, AttributeError):
        return None
    return reply if isinstance(reply, dict) and isinstance(reply.get("ok"), bool) else None


async def settle(pool: ArqRedis, queue_name: str, job_id: str) -> str:
    """After a caller's deadline: withdraw the job if it never started (see ``settle.lua``)."""
    job, queue = job_keys(job_id), QueueKeys(queue_name)
    keys = SettleKeys(
        job.job,
        job.claim,
        job.tries,
        job.result,
        queue_name,
        queue.writes,
        queue.reply(job_id),
        queue.workers,
    )
    try:
        state = await SETTLE.run(pool, keys, SettleArgs(job_id, int(ALIVE_S * 1000)))
    except RedisError as exc:
        raise BackendError(None, f"settling job {job_id}: {exc}") from exc
    return state.decode()
