"""The queue as both sides see it: one-round-trip enqueue, replies, wake-up, settling.

A job is arq's JSON record under ``arq:job:<id>`` plus its id in the queue's
sorted set; ``enqueue.lua`` (PROTOCOL.md: every producer's way in) checks its
shape, writes both in one step, leaves an id that is already queued or
answered alone, and pushes a token on ``<queue>:wake``. An idle
worker blocks on that list instead of polling (``worker.runtime.batch``), so it costs
Redis a few commands a second and still starts a job a round trip after it
is enqueued.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from arq.connections import ArqRedis
from redis.exceptions import RedisError, ResponseError

from store import BackendError, InvalidArgument
from worker.protocol import version as protocol
from worker.protocol.keys import ALIVE_S, QueueKeys, job_keys
from worker.protocol.scripts import (
    ENQUEUE,
    SETTLE,
    EnqueueArgs,
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
    sent_at_ms: int | None = None,
) -> bytes:
    """A job (arq's record and the protocol's version), from the JSON of its arguments;
    with ``trace``, the W3C trace context it continues (``tc``). ``sent_at_ms`` (default:
    now) is its ``et``, which the store's fences of withdrawn op ids judge it by."""
    sent = int(time.time() * 1000) if sent_at_ms is None else sent_at_ms
    head: dict[str, Any] = {"v": protocol.VERSION, "f": function, "et": sent}
    if trace:
        head["tc"] = dict(trace)
    fields = json.dumps(head)
    return b"".join((fields[:-1].encode(), b',"a":', args, b',"k":', kwargs, b"}"))


def enqueue_keys(queue_name: str, job_id: str) -> EnqueueKeys:
    """The KEYS of ``enqueue.lua`` for one job."""
    job, queue = job_keys(job_id), QueueKeys(queue_name)
    return EnqueueKeys(job.job, job.result, queue_name, queue.wake, queue.reply(job_id))


async def enqueue(pool: ArqRedis, queue_name: str, job_id: str, payload: bytes) -> bool:
    """Put one job on the queue; False if that id was already queued, running or answered."""
    try:
        enqueued = await ENQUEUE.run(
            pool, enqueue_keys(queue_name, job_id), EnqueueArgs(job_id, payload)
        )
    except ResponseError as exc:
        if "taskstore:" not in str(exc):
            raise BackendError(None, f"enqueueing job {job_id}: {exc}") from exc
        raise InvalidArgument(str(exc).partition("taskstore: ")[2]) from None
    except RedisError as exc:
        raise BackendError(None, f"enqueueing job {job_id}: {exc}") from exc
    return bool(enqueued.added)


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


async def settle(pool: ArqRedis, queue_name: str, job_id: str) -> str:
    """After a caller's deadline: withdraw the job if it never started (see ``settle.lua``)."""
    job, queue = job_keys(job_id), QueueKeys(queue_name)
    keys = SettleKeys(
        job.job, job.claim, job.tries, job.result, queue_name, queue.reply(job_id), queue.workers
    )
    try:
        state = await SETTLE.run(pool, keys, SettleArgs(job_id, int(ALIVE_S * 1000)))
    except RedisError as exc:
        raise BackendError(None, f"settling job {job_id}: {exc}") from exc
    return state.decode()
