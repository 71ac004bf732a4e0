"""The queue as both sides see it: arq's keys, one-round-trip enqueue, replies, idle wake-up.

A job is arq's JSON record under ``arq:job:<id>`` plus its id in the queue's
sorted set; ``enqueue.lua`` (PROTOCOL.md: every producer's way in) checks its
shape, writes both in one step, leaves an id that is already queued or
answered alone, and pushes a token on ``<queue>:wake``. An idle
worker blocks on that list instead of polling (``QueuePool``), so it costs
Redis a few commands a second and still starts a job a round trip after it
is enqueued.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from arq.connections import ArqRedis, RedisSettings
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, ResponseError, WatchError

from store import BackendError, InvalidArgument
from worker import protocol
from worker.liveness import ALIVE_S, workers_key
from worker.scripts import ENQUEUE, SETTLE, EnqueueArgs, EnqueueKeys, SettleArgs, SettleKeys
from worker.serialization import deserialize

IDLE_WAIT_S = 1.0
"""How long an idle worker sleeps on its wake-up list between two looks at the queue."""

FinishHook = Callable[[Pipeline, str, bytes | None], None]
"""Called with arq's MULTI that finishes job ``job_id``, to add commands to it: with
arq's result as stored, or None when the job is deferred for a retry."""


def reply_key(queue_name: str, job_id: str) -> str:
    """Where the worker pushes a job's outcome for the waiting client."""
    return f"{queue_name}:reply:{job_id}"


def wake_key(queue_name: str) -> str:
    return f"{queue_name}:wake"


def job_payload(function: str, args: bytes, kwargs: bytes) -> bytes:
    """A job (arq's record and the protocol's version), from the JSON of its arguments."""
    head = json.dumps({"v": protocol.VERSION, "f": function, "et": int(time.time() * 1000)})
    return b"".join((head[:-1].encode(), b',"a":', args, b',"k":', kwargs, b"}"))


def enqueue_keys(queue_name: str, job_id: str) -> EnqueueKeys:
    """The KEYS of ``enqueue.lua`` for one job."""
    return EnqueueKeys(
        job_key_prefix + job_id,
        result_key_prefix + job_id,
        queue_name,
        wake_key(queue_name),
        reply_key(queue_name, job_id),
    )


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
    key = reply_key(queue_name, job_id)
    redis: Any = pool
    try:
        reply = await redis.blmove(key, key, timeout_s, "RIGHT", "LEFT")
    except RedisError as exc:
        raise BackendError(None, f"waiting for job {job_id}: {exc}") from exc
    return None if reply is None else deserialize(reply)


async def settle(pool: ArqRedis, queue_name: str, job_id: str) -> str:
    """After a caller's deadline: withdraw the job if it never started (see ``settle.lua``)."""
    keys = SettleKeys(
        job_key_prefix + job_id,
        in_progress_key_prefix + job_id,
        retry_key_prefix + job_id,
        result_key_prefix + job_id,
        queue_name,
        reply_key(queue_name, job_id),
        workers_key(queue_name),
    )
    try:
        state = await SETTLE.run(pool, keys, SettleArgs(job_id, int(ALIVE_S * 1000)))
    except RedisError as exc:
        raise BackendError(None, f"settling job {job_id}: {exc}") from exc
    return state.decode()


class QueuePool(ArqRedis):
    """arq's Redis client for a worker: idle polls wait for a wake-up token; claims survive drops.

    arq polls with ZRANGEBYSCORE every ``poll_delay``; when that finds nothing
    ready (or only jobs that other workers hold, twice running), this blocks on
    the wake-up list until a producer enqueues, the next deferred job (a retry,
    a cron run) is due, or ``IDLE_WAIT_S`` passes, then looks once more. Its
    pipelines are ``ClaimPipeline``.
    """

    lease_ms: int = 5000
    on_finish: FinishHook | None = None

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = ClaimPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.lease_ms, pipe.queue_name = self.lease_ms, self.default_queue_name
        pipe.on_finish = self.on_finish
        return pipe

    _seen: tuple[bytes, ...] = ()

    async def zrangebyscore(self, name: Any, *args: Any, **kwargs: Any) -> Any:
        found = await super().zrangebyscore(name, *args, **kwargs)
        if name != self.default_queue_name:
            return found
        # The same jobs as last time, each still claimed by another worker: nothing to take.
        if found and tuple(found) == self._seen and await self._all_claimed(found):
            found = []
        self._seen = tuple(found)
        if not found:
            await self._idle(name)
            found = await super().zrangebyscore(name, *args, **kwargs)
        return found

    async def _all_claimed(self, job_ids: list[bytes]) -> bool:
        keys = [in_progress_key_prefix + j.decode() for j in job_ids]
        return bool(await self.exists(*keys) == len(keys))

    async def _idle(self, queue_name: str) -> None:
        wait = IDLE_WAIT_S
        upcoming = await super().zrangebyscore(
            queue_name, f"({int(time.time() * 1000)}", "+inf", start=0, num=1, withscores=True
        )
        if upcoming:
            wait = min(wait, upcoming[0][1] / 1000 - time.time())
        if wait > 0.001:
            redis: Any = self
            await redis.blpop([wake_key(queue_name)], timeout=wait)


class ClaimPipeline(Pipeline):
    """The pipeline arq claims and finishes jobs with.

    The claim is a lease, a lost WATCH skips the job, and ``on_finish`` adds
    its commands to the MULTI that finishes a job.

    arq claims a job with WATCH, EXISTS and ZSCORE, then MULTI and a PSETEX of
    ``arq:in-progress:<id>`` for the job timeout plus 10 s. Here that PSETEX
    sets a lease of ``lease_ms`` instead, which the running job renews
    (``liveness.lease``), so a worker that dies right after claiming holds the
    job no longer than one lease. When the connection drops after WATCH,
    redis-py raises ``WatchError`` from EXISTS or ZSCORE, which arq 0.28 does
    not catch there (its worker loop would end); answering as if another
    worker held the job makes arq skip it, and the next poll claims it on a
    fresh connection.
    """

    lease_ms: int = 5000
    queue_name: str = ""
    on_finish: FinishHook | None = None

    def set(self, name: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        """arq stores a finished job's result: let ``on_finish`` add to the same MULTI."""
        queued = super().set(name, value, *args, **kwargs)
        if self.on_finish is not None and str(name).startswith(result_key_prefix):
            self.on_finish(self, str(name)[len(result_key_prefix) :], value)
        return queued

    def zincrby(self, name: Any, amount: float, value: Any) -> Any:
        """arq defers a job to retry it by raising its score."""
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
            return await super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except WatchError:
            if args[0] == "EXISTS":
                return 1
            if args[0] == "ZSCORE":
                return None
            raise


def queue_pool(
    redis_settings: RedisSettings,
    queue_name: str,
    serializer: Any,
    deserializer: Any,
    lease_s: float,
    on_finish: FinishHook | None = None,
) -> QueuePool:
    """The worker's pool, made as ``arq.connections.create_pool`` makes its own."""
    s = redis_settings
    pool = QueuePool(
        host=s.host,
        port=s.port,
        unix_socket_path=s.unix_socket_path,
        db=s.database,
        username=s.username,
        password=s.password,
        socket_connect_timeout=s.conn_timeout,
        ssl=s.ssl,
        ssl_keyfile=s.ssl_keyfile,
        ssl_certfile=s.ssl_certfile,
        ssl_cert_reqs=s.ssl_cert_reqs,
        ssl_ca_certs=s.ssl_ca_certs,
        ssl_ca_data=s.ssl_ca_data,
        ssl_check_hostname=s.ssl_check_hostname,
        retry=s.retry,
        retry_on_timeout=s.retry_on_timeout,
        retry_on_error=s.retry_on_error,
        max_connections=s.max_connections,
        encoding="utf8",
    )
    pool.job_serializer = serializer
    pool.job_deserializer = deserializer
    pool.default_queue_name = queue_name
    pool.lease_ms = int(lease_s * 1000)
    pool.on_finish = on_finish
    return pool
