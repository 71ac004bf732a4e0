"""The queue as both sides see it: arq's keys, one-round-trip enqueue, replies, idle wake-up.

A job is arq's JSON record under ``arq:job:<id>`` plus its id in the queue's
sorted set; ``enqueue.lua`` writes both in one step, refuses an id that is
already queued or answered, and pushes a token on ``<queue>:wake``. An idle
worker blocks on that list instead of polling (``QueuePool``), so it costs
Redis a few commands a second and still starts a job a round trip after it
is enqueued.
"""

from __future__ import annotations

import hashlib
import json
import time
from importlib import resources
from typing import Any

from arq.connections import ArqRedis, RedisSettings
from arq.constants import expires_extra_ms, job_key_prefix, result_key_prefix
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, RedisError, WatchError

from store import BackendError
from worker.serialization import deserialize

JOB_EXPIRY_MS = expires_extra_ms
IDLE_WAIT_S = 1.0
"""How long an idle worker sleeps on its wake-up list between two looks at the queue."""

ENQUEUE_SCRIPT = resources.files("worker").joinpath("enqueue.lua").read_text()
ENQUEUE_SHA = hashlib.sha1(ENQUEUE_SCRIPT.encode()).hexdigest()


def reply_key(queue_name: str, job_id: str) -> str:
    """Where the worker pushes a job's outcome for the waiting client."""
    return f"{queue_name}:reply:{job_id}"


def wake_key(queue_name: str) -> str:
    return f"{queue_name}:wake"


def job_payload(function: str, args: bytes, kwargs: bytes) -> bytes:
    """arq's job record, from the JSON of its arguments (a list) and keyword arguments."""
    head = json.dumps({"t": None, "f": function, "et": int(time.time() * 1000)})
    return b"".join((head[:-1].encode(), b',"a":', args, b',"k":', kwargs, b"}"))


async def enqueue(pool: ArqRedis, queue_name: str, job_id: str, payload: bytes) -> bool:
    """Put one job on the queue; False if that id was already queued or answered."""
    keys = (job_key_prefix + job_id, result_key_prefix + job_id, queue_name, wake_key(queue_name))
    argv = (job_id, payload, int(time.time() * 1000), JOB_EXPIRY_MS)
    redis: Any = pool  # redis-py's command stubs mix sync and async return types
    try:
        try:
            added = await redis.evalsha(ENQUEUE_SHA, 4, *keys, *argv)
        except NoScriptError:  # EVAL caches it for the next call
            added = await redis.eval(ENQUEUE_SCRIPT, 4, *keys, *argv)
    except RedisError as exc:
        raise BackendError(None, f"enqueueing job {job_id}: {exc}") from exc
    return bool(added)


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


class QueuePool(ArqRedis):
    """arq's Redis client for a worker: idle polls wait for a wake-up token; claims survive drops.

    arq polls with ZRANGEBYSCORE every ``poll_delay``; when that finds nothing
    ready, this blocks on the wake-up list until a producer enqueues, the next
    deferred job (a retry, a cron run) is due, or ``IDLE_WAIT_S`` passes, then
    looks once more. Its pipelines are ``ClaimPipeline``.
    """

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return ClaimPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)

    async def zrangebyscore(self, name: Any, *args: Any, **kwargs: Any) -> Any:
        found = await super().zrangebyscore(name, *args, **kwargs)
        if not found and name == self.default_queue_name:
            await self._idle(name)
            found = await super().zrangebyscore(name, *args, **kwargs)
        return found

    async def _idle(self, queue_name: str) -> None:
        wait = IDLE_WAIT_S
        upcoming: list[tuple[bytes, float]] = await self.zrange(queue_name, 0, 0, withscores=True)
        if upcoming:
            wait = min(wait, upcoming[0][1] / 1000 - time.time())
        if wait > 0.001:
            redis: Any = self
            await redis.blpop([wake_key(queue_name)], timeout=wait)


class ClaimPipeline(Pipeline):
    """A pipeline whose lost WATCH reads as "another worker holds that job".

    arq claims a job with WATCH, EXISTS and ZSCORE before MULTI. When the
    connection drops after WATCH, redis-py raises ``WatchError`` from EXISTS
    or ZSCORE, which arq 0.28 does not catch there: its worker loop would
    end. Answering as if the job were taken makes arq skip it, and the next
    poll claims it on a fresh connection.
    """

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
    redis_settings: RedisSettings, queue_name: str, serializer: Any, deserializer: Any
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
    return pool
