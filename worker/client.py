"""``TaskStoreClient``: enqueue writes for the worker, read the store directly.

Writes are arq jobs whose id is the operation's op id; their outcome comes
back on a per-job reply list that the client BLPOPs, so a call returns
within milliseconds of the worker finishing rather than on arq's 0.5 s result
poll. Reads skip the queue and go straight to the store.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast

from arq.connections import ArqRedis, create_pool
from arq.jobs import SerializationError
from redis.exceptions import RedisError

from store import (
    BackendError,
    BatchOp,
    BatchOutcome,
    InvalidArgument,
    Page,
    StorageError,
    VersionedRecord,
)
from store.redis import EmbeddedRedis
from store.tasks import TaskPage, TaskRecord, TaskStatus
from worker.connections import check_queue, open_stores, queue_redis_settings
from worker.envelope import open_envelope
from worker.jobs import reply_key
from worker.operations import Stores
from worker.serialization import deserialize, serialize
from worker.settings import Settings, load_settings

T = TypeVar("T")
P = ParamSpec("P")


class ReplyTimeout(TimeoutError):
    """No outcome arrived in time; the job may still run (its op id keeps it at most once)."""

    def __init__(self, job_id: str, timeout_s: float) -> None:
        super().__init__(f"no reply for job {job_id} within {timeout_s} s")
        self.job_id = job_id


class JobHandle(Generic[T]):
    """An enqueued write; ``await handle.result()`` gives its outcome or raises its error."""

    def __init__(
        self,
        client: TaskStoreClient,
        job_id: str,
        convert: Callable[[Any], T] | None = None,
    ) -> None:
        self._client = client
        self.job_id = job_id
        self._convert = convert

    async def result(self, timeout_s: float | None = None) -> T:
        """Wait up to ``timeout_s`` (default: the reply timeout setting) for the outcome."""
        wait = self._client.settings.reply_timeout_s if timeout_s is None else timeout_s
        key = reply_key(self._client.settings.queue_name, self.job_id)
        pool: Any = self._client.pool
        try:
            # BLMOVE onto itself leaves the reply in place (until it expires),
            # so waiting twice, or re-sending the same op id, still finds it.
            reply = await pool.blmove(key, key, wait, "RIGHT", "LEFT")
        except RedisError as exc:
            raise BackendError(None, f"waiting for job {self.job_id}: {exc}") from exc
        if reply is None:
            raise ReplyTimeout(self.job_id, wait)
        value = open_envelope(deserialize(reply))
        return self._convert(value) if self._convert is not None else cast(T, value)


def _job_id(scope: str, op_id: str | None) -> str:
    """A fresh job id, or one derived from the caller's op id and the key or owner it acts on.

    arq's job ids share one namespace, so a caller's op id is hashed with its
    scope: the same op id from another owner can never meet this job or its reply.
    """
    if op_id is None:
        return uuid.uuid4().hex
    if not isinstance(op_id, str) or not 0 < len(op_id) <= 256:
        raise InvalidArgument("op_id must be a non-empty str of at most 256 chars")
    digest = hashlib.sha256(f"{scope}\0{op_id}".encode(errors="surrogatepass")).hexdigest()
    return f"op-{digest[:40]}"


def _batch_outcomes(envelopes: Any) -> list[BatchOutcome]:
    outcomes: list[BatchOutcome] = []
    for item in envelopes:
        try:
            outcomes.append(int(open_envelope(item)))
        except StorageError as exc:
            outcomes.append(exc)
    return outcomes


def _task_scope(owner_id: str, task_id: str) -> str:
    return f"{owner_id}\0{task_id}"


def _awaited(
    enqueue: Callable[Concatenate[TaskStoreClient, P], Awaitable[JobHandle[T]]],
) -> Callable[Concatenate[TaskStoreClient, P], Awaitable[T]]:
    """The write itself: enqueue, then wait for the outcome with the default timeout."""

    async def call(self: TaskStoreClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await (await enqueue(self, *args, **kwargs)).result()

    name = enqueue.__name__.removeprefix("enqueue_")
    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"Enqueue ``{name}`` and await its outcome; see ``{enqueue.__name__}``."
    return call


class TaskStoreClient:
    def __init__(
        self,
        settings: Settings,
        pool: ArqRedis,
        stores: Stores,
        server: EmbeddedRedis | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.stores = stores
        self._server = server

    @classmethod
    async def open(cls, settings_or_url: Settings | str | None = None) -> TaskStoreClient:
        """Connect to the queue and the store named by settings (or a Redis URL)."""
        if isinstance(settings_or_url, Settings):
            settings = settings_or_url
        elif settings_or_url is None:
            settings = load_settings()
        else:
            settings = load_settings(redis_url=settings_or_url)
        if settings.store_url_value.startswith("memory://"):
            raise InvalidArgument("a client cannot read a memory:// store in another process")
        redis_settings, server = await asyncio.to_thread(
            functools.partial(queue_redis_settings, settings, ride_out_outages=False)
        )
        try:
            await check_queue(settings)
            pool = await create_pool(
                redis_settings,
                default_queue_name=settings.queue_name,
                job_serializer=serialize,
                job_deserializer=deserialize,
            )
            stores = await open_stores(settings)
        except BaseException:
            if server is not None:
                await asyncio.to_thread(server.stop)
            raise
        return cls(settings, pool, stores, server)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, settings_or_url: Settings | str | None = None
    ) -> AsyncIterator[TaskStoreClient]:
        client = await cls.open(settings_or_url)
        try:
            yield client
        finally:
            await client.aclose()

    async def aclose(self) -> None:
        try:
            await self.stores.backend.aclose()
            await self.pool.aclose()
        finally:
            if self._server is not None:
                await asyncio.to_thread(self._server.stop)

    # -- reads: straight to the store ------------------------------------------

    async def get(self, key: str) -> VersionedRecord:
        return await self.stores.backend.get(key)

    async def list_page(self, owner_id: str, cursor: str | None = None, limit: int = 50) -> Page:
        return await self.stores.backend.list_page(owner_id, cursor, limit)

    async def count(self, owner_id: str) -> int:
        return await self.stores.backend.count(owner_id)

    async def get_task(self, task_id: str, owner_id: str) -> TaskRecord:
        return await self.stores.tasks.get(task_id, owner_id)

    async def list_tasks(
        self, owner_id: str, cursor: str | None = None, limit: int = 50
    ) -> TaskPage:
        return await self.stores.tasks.list(owner_id, cursor, limit)

    async def get_result(self, task_id: str, owner_id: str) -> Any:
        return await self.stores.tasks.get_result(task_id, owner_id)

    # -- writes: enqueued ------------------------------------------------------

    async def enqueue_put(
        self,
        key: str,
        data: bytes,
        *,
        expires_at_ms: int | None = None,
        created_at_ms: int | None = None,
        op_id: str | None = None,
        max_records_per_owner: int | None = None,
    ) -> JobHandle[int]:
        return await self._enqueue(
            "put",
            key,
            op_id,
            key,
            data,
            expires_at_ms=expires_at_ms,
            created_at_ms=created_at_ms,
            max_records_per_owner=max_records_per_owner,
        )

    async def enqueue_put_if_version(
        self,
        key: str,
        data: bytes,
        expected_version: int,
        *,
        expires_at_ms: int | None = None,
        created_at_ms: int | None = None,
        op_id: str | None = None,
    ) -> JobHandle[int]:
        return await self._enqueue(
            "put_if_version",
            key,
            op_id,
            key,
            data,
            expected_version,
            expires_at_ms=expires_at_ms,
            created_at_ms=created_at_ms,
        )

    async def enqueue_delete(self, key: str, *, op_id: str | None = None) -> JobHandle[bool]:
        return await self._enqueue("delete", key, op_id, key)

    async def enqueue_apply_batch(
        self, ops: Sequence[BatchOp], *, op_id: str | None = None
    ) -> JobHandle[list[BatchOutcome]]:
        """Many puts and CAS ops in one job; each keeps its own outcome.

        An op's ``op_id`` is ignored: the batch's op id covers all its ops.
        """
        items = [
            {f.name: getattr(op, f.name) for f in fields(op) if f.name != "op_id"} for op in ops
        ]
        scope = "\0".join(str(item["key"]) for item in items)
        handle: JobHandle[Any] = await self._enqueue("apply_batch", scope, op_id, items)
        return JobHandle(self, handle.job_id, _batch_outcomes)

    async def enqueue_create_task(
        self,
        owner_id: str,
        request_method: str,
        ttl_ms: int | None = None,
        *,
        op_id: str | None = None,
    ) -> JobHandle[TaskRecord]:
        return await self._enqueue("create_task", owner_id, op_id, owner_id, request_method, ttl_ms)

    async def enqueue_update_status(
        self,
        task_id: str,
        owner_id: str,
        status: TaskStatus | str,
        status_message: str | None = None,
        *,
        op_id: str | None = None,
    ) -> JobHandle[TaskRecord]:
        return await self._enqueue(
            "update_status",
            _task_scope(owner_id, task_id),
            op_id,
            task_id,
            owner_id,
            str(status),
            status_message,
        )

    async def enqueue_set_variables(
        self, task_id: str, owner_id: str, variables: dict[str, Any], *, op_id: str | None = None
    ) -> JobHandle[TaskRecord]:
        return await self._enqueue(
            "set_variables", _task_scope(owner_id, task_id), op_id, task_id, owner_id, variables
        )

    async def enqueue_set_result(
        self, task_id: str, owner_id: str, result: Any, *, op_id: str | None = None
    ) -> JobHandle[TaskRecord]:
        return await self._enqueue(
            "set_result", _task_scope(owner_id, task_id), op_id, task_id, owner_id, result
        )

    async def enqueue_complete_with_result(
        self,
        task_id: str,
        owner_id: str,
        status: TaskStatus | str,
        result: Any,
        status_message: str | None = None,
        *,
        op_id: str | None = None,
    ) -> JobHandle[TaskRecord]:
        return await self._enqueue(
            "complete_with_result",
            _task_scope(owner_id, task_id),
            op_id,
            task_id,
            owner_id,
            str(status),
            result,
            status_message,
        )

    async def enqueue_cancel_task(
        self, task_id: str, owner_id: str, *, op_id: str | None = None
    ) -> JobHandle[TaskRecord]:
        return await self._enqueue(
            "cancel_task", _task_scope(owner_id, task_id), op_id, task_id, owner_id
        )

    put = _awaited(enqueue_put)
    put_if_version = _awaited(enqueue_put_if_version)
    delete = _awaited(enqueue_delete)
    apply_batch = _awaited(enqueue_apply_batch)
    create_task = _awaited(enqueue_create_task)
    update_status = _awaited(enqueue_update_status)
    set_variables = _awaited(enqueue_set_variables)
    set_result = _awaited(enqueue_set_result)
    complete_with_result = _awaited(enqueue_complete_with_result)
    cancel_task = _awaited(enqueue_cancel_task)

    async def _enqueue(
        self, name: str, scope: str, op_id: str | None, *args: Any, **kwargs: Any
    ) -> JobHandle[Any]:
        """Enqueue as a job whose id is the op id; an op id already queued is not re-added.

        ``scope`` is the key or owner the operation acts on (see ``_job_id``).
        """
        job_id = _job_id(scope, op_id)
        try:
            await self.pool.enqueue_job(name, *args, _job_id=job_id, **kwargs)
        except SerializationError as exc:
            # arq encodes the job with our serializer before sending anything.
            raise InvalidArgument(
                f"{name}: arguments are not JSON-serializable: {exc.__cause__}"
            ) from None
        except RedisError as exc:
            raise BackendError(None, f"enqueueing {name}: {exc}") from exc
        return JobHandle(self, job_id)
