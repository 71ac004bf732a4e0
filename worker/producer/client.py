"""``TaskStoreClient``: enqueue writes for the worker, read the store directly.

Every write travels in an ``ops`` job that says how long its caller waits
(``REPLY_TIMEOUT_S``). Writes issued close together (the same turn of the
event loop, or within ``COALESCE_WINDOW_MS``) share one job of up to
``COALESCE_MAX_OPS`` writes, each with its own op id and outcome;
``coalesce=False`` sends a write alone, in a job of its own. Jobs
go on the queue in the order they were sent (``Sender``). Outcomes come back
on a per-job reply list that the client waits on with BLMOVE, so a call
returns within milliseconds of the worker finishing;
``worker.producer.handle`` says how a job is settled at its deadline, and the store
settles the writes of a job the queue no longer holds. Reads skip the queue
and go straight to the store.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from typing import Any, Concatenate, ParamSpec, TypeVar

from arq.connections import ArqRedis

from store import BatchOp, BatchOutcome, InvalidArgument, Page, StorageError, VersionedRecord
from store.redis import EmbeddedRedis
from store.tasks import TaskError, TaskPage, TaskRecord
from worker.producer.coalesce import Coalescer
from worker.producer.handle import JobHandle, ReplyTimeout, await_job
from worker.producer.replies import SharedReplies
from worker.protocol import envelope, tracing, writes
from worker.protocol.connections import check_queue, open_stores, queue_client, queue_redis_settings
from worker.protocol.envelope import Envelope, open_envelope
from worker.protocol.errors import DeadlineExceeded, NoWorkerAlive, OutcomeUnknown
from worker.protocol.writes import BATCH_FIELDS, MAX_JOB_BYTES, MAX_OPS_PER_JOB, RETRYABLE

__all__ = ["JobHandle", "ReplyTimeout", "TaskStoreClient"]
from worker.producer.queue import Sender, job_payload
from worker.protocol.serialization import deserialize, serialize
from worker.protocol.settings import Settings, load_settings
from worker.protocol.writes import Stores, Write

T = TypeVar("T")
P = ParamSpec("P")

log = logging.getLogger("taskstore.client")

Pending = tuple[Write[..., Any], dict[str, Any], str]
"""A write a handle waits on: what it is, its arguments by name, its op id."""


def _scoped_op_id(scope: str, op_id: str) -> str:
    """The caller's op id, hashed with the key or owner the write acts on.

    Op ids share one namespace in the store and on the queue, so the same op id
    from another owner can never meet this write, its job or its reply.
    """
    if not isinstance(op_id, str) or not 0 < len(op_id) <= 256:
        raise InvalidArgument("op_id must be a non-empty str of at most 256 chars")
    digest = hashlib.sha256(f"{scope}\0{op_id}".encode(errors="surrogatepass")).hexdigest()
    return f"op-{digest[:40]}"


def _encoded(name: str, value: object) -> bytes:
    """A job's arguments as JSON; ``InvalidArgument`` (nothing sent) when they are not JSON."""
    try:
        return serialize(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgument(f"{name}: arguments are not JSON: {exc!r:.200}") from None


def _batch_outcomes(envelopes: Any) -> list[BatchOutcome]:
    outcomes: list[BatchOutcome] = []
    for item in envelopes:
        try:
            outcomes.append(int(open_envelope(item)))
        except StorageError as exc:
            outcomes.append(exc)
    return outcomes


def _enqueuer(
    write: Write[P, T],
) -> Callable[Concatenate[TaskStoreClient, P], Awaitable[JobHandle[T]]]:
    async def enqueue_write(
        self: TaskStoreClient, /, *args: P.args, **kwargs: P.kwargs
    ) -> JobHandle[T]:
        return await self._enqueue(write, args, kwargs)

    enqueue_write.__name__ = enqueue_write.__qualname__ = f"enqueue_{write.name}"
    enqueue_write.__doc__ = f"Enqueue ``{write.name}``; a handle to await. {write.stub.__doc__}"
    return enqueue_write


def _caller(write: Write[P, T]) -> Callable[Concatenate[TaskStoreClient, P], Awaitable[T]]:
    async def call(self: TaskStoreClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await (await self._enqueue(write, args, kwargs)).result()

    call.__name__ = call.__qualname__ = write.name
    call.__doc__ = f"Enqueue ``{write.name}`` and await its outcome. {write.stub.__doc__}"
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
        self._fresh_prefix, self._fresh = f"{uuid.uuid4().hex}-", itertools.count()
        self._sender = Sender(pool, settings.queue_name)
        self._replies = SharedReplies(pool, settings.queue_name)
        self._coalescer = Coalescer(
            self._send,
            lambda job_id: await_job(pool, settings, job_id, self._replies),
            settings.coalesce_window_ms / 1000,
            settings.coalesce_max_ops,
            MAX_JOB_BYTES - _JOB_HEADROOM,
        )

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
            pool = queue_client(settings, redis_settings, ArqRedis)
            pool.job_serializer, pool.job_deserializer = serialize, deserialize
            pool.default_queue_name = settings.queue_name
            stores = await open_stores(settings)
        except BaseException:
            if server is not None:
                await asyncio.to_thread(server.release)
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

    @property
    def reply_to(self) -> str:
        """The name of this client's reply list (``<queue>:replies:<reply_to>``)."""
        return self._replies.reply_to

    async def aclose(self) -> None:
        try:
            await self._coalescer.aclose()
            await self._replies.aclose()
            await self.stores.backend.aclose()
            await self.pool.aclose()
        finally:
            if self._server is not None:
                await asyncio.to_thread(self._server.release)

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

    enqueue_put = _enqueuer(writes.put)
    enqueue_put_if_version = _enqueuer(writes.put_if_version)
    enqueue_delete = _enqueuer(writes.delete)
    enqueue_create_task = _enqueuer(writes.create_task)
    enqueue_update_status = _enqueuer(writes.update_status)
    enqueue_set_variables = _enqueuer(writes.set_variables)
    enqueue_set_result = _enqueuer(writes.set_result)
    enqueue_complete_with_result = _enqueuer(writes.complete_with_result)
    enqueue_cancel_task = _enqueuer(writes.cancel_task)

    put = _caller(writes.put)
    put_if_version = _caller(writes.put_if_version)
    delete = _caller(writes.delete)
    create_task = _caller(writes.create_task)
    update_status = _caller(writes.update_status)
    set_variables = _caller(writes.set_variables)
    set_result = _caller(writes.set_result)
    complete_with_result = _caller(writes.complete_with_result)
    cancel_task = _caller(writes.cancel_task)

    async def enqueue_apply_batch(
        self, ops: Sequence[BatchOp], *, op_id: str | None = None
    ) -> JobHandle[list[BatchOutcome]]:
        """Many puts and CAS ops in one job of their own; each keeps its own outcome.

        An op's ``op_id`` is ignored: op ``i`` runs under ``<the batch's op id>:<i>``.
        """
        if not 0 < len(ops) <= MAX_OPS_PER_JOB:
            raise InvalidArgument(f"apply_batch takes 1 to {MAX_OPS_PER_JOB} ops, not {len(ops)}")
        items = [
            {f.name: getattr(op, f.name) for f in fields(op) if f.name in BATCH_FIELDS}
            for op in ops
        ]
        batch_op = self._op_id("\0".join(str(item["key"]) for item in items), op_id)
        pending: list[Pending] = []
        for i, item in enumerate(items):
            write, args = writes.batch_write(item)
            pending.append((write, args, f"{batch_op}:{i}"))
        encoded = [_encoded("apply_batch", _op(p)) for p in pending]
        return await self._submit(pending, encoded, batch_op, None, _batch_outcomes, alone=True)

    async def apply_batch(
        self, ops: Sequence[BatchOp], *, op_id: str | None = None
    ) -> list[BatchOutcome]:
        """Enqueue ``apply_batch`` and await its outcomes; see ``enqueue_apply_batch``."""
        return await (await self.enqueue_apply_batch(ops, op_id=op_id)).result()

    async def _enqueue(
        self, write: Write[P, T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> JobHandle[T]:
        """Check the arguments against the declaration, then send the write."""
        op_id = kwargs.pop("op_id", None)
        coalesce = kwargs.pop("coalesce", True)
        bound = write.bind(args, kwargs)
        op = self._op_id(write.scope(bound), op_id)
        pending: Pending = (write, bound, op)
        encoded = _encoded(write.name, _op(pending))
        return await self._submit([pending], [encoded], op, 0, write.decode, alone=not coalesce)

    async def _submit(
        self,
        pending: list[Pending],
        encoded: list[bytes],
        op_id: str,
        index: int | None,
        decode: Callable[[Any], T],
        *,
        alone: bool,
    ) -> JobHandle[T]:
        """Send encoded writes, in the open batch or alone, and hand back.

        Each send is a job of its own: sent again after an answer of "not applied", a
        write is a new attempt, never the first attempt's kept reply."""
        if alone:
            batch = self._coalescer.alone(encoded, f"{op_id}.{uuid.uuid4().hex[:12]}")
        else:
            batch, index = self._coalescer.add(encoded[0])
        job_id = await asyncio.shield(batch.enqueued)

        def resend() -> Awaitable[JobHandle[T]]:
            return self._submit(pending, encoded, op_id, index if alone else 0, decode, alone=True)

        async def withdraw(sent_at_ms: int, no_worker: bool) -> Envelope:
            outcomes = await asyncio.gather(
                *(self._withdraw(p, job_id, sent_at_ms, no_worker) for p in pending)
            )
            log.info(
                "job %s: the queue holds it no more; its writes settled in the store: %s",
                job_id,
                ", ".join(
                    f"{n} {label}" for label, n in Counter(map(envelope.label, outcomes)).items()
                ),
                extra={"job_id": job_id},
            )
            return envelope.success(list(outcomes))

        async def replay() -> Envelope:
            outcomes = [await self._replay(p) for p in pending]
            return outcomes[0] if index is not None else envelope.success(outcomes)

        return JobHandle(batch, job_id, op_id, index, decode, resend, withdraw, replay)

    async def _replay(self, pending: Pending) -> Envelope:
        """The first outcome of a write that was applied, sent again to the store under its
        op id (which applies nothing new)."""
        write, args, op_id = pending
        try:
            return envelope.success(await write.run(self.stores, args, op_id, None))
        except (StorageError, TaskError) as exc:
            return envelope.failure(exc)

    async def _withdraw(
        self, pending: Pending, job_id: str, sent_at_ms: int, no_worker: bool
    ) -> Envelope:
        """The outcome of a write whose job the queue holds no more, from the store
        (``Write.settle``): ``WriteNotApplied`` once its op id is fenced against this
        attempt, or its first outcome when it was applied."""
        write, args, op_id = pending
        not_applied = (NoWorkerAlive if no_worker else DeadlineExceeded)(op_id)
        try:
            return envelope.success(
                await write.settle(self.stores, args, op_id, sent_at_ms, not_applied)
            )
        except RETRYABLE:
            return envelope.failure(OutcomeUnknown(op_id, job_id))
        except (StorageError, TaskError) as exc:
            return envelope.failure(exc)

    def _op_id(self, scope: str, op_id: str | None) -> str:
        """The caller's op id, scoped; else a fresh one (this client's random prefix, a count)."""
        if op_id is not None:
            return _scoped_op_id(scope, op_id)
        return f"{self._fresh_prefix}{next(self._fresh):x}"

    async def _send(self, job_id: str, encoded_ops: bytes, writes: int) -> int:
        """Enqueue an ``ops`` job that its caller waits ``REPLY_TIMEOUT_S`` for, as the
        producer span of the caller's trace; when the queue took it (its ``qt``).

        An id already queued or answered is not added again: the caller waits for that one.
        """
        queue = self.settings.queue_name
        with tracing.sending(queue, job_id, writes) as trace:
            payload = job_payload(
                "ops",
                b"[" + encoded_ops + b"]",
                b"{}",
                trace,
                wait_ms=int(self.settings.reply_timeout_s * 1000),
                reply_to=self._replies.reply_to,
            )
            self._replies.expect(job_id)
            try:
                enqueued = await self._sender.send(job_id, payload)
            except BaseException:
                self._replies.forget(job_id)
                raise
        return int(enqueued.qt)


_JOB_HEADROOM = 4096
"""Room in a job for what surrounds its writes: the header, the trace context, the stamp."""


def _op(pending: Pending) -> dict[str, Any]:
    """One write of an ``ops`` job."""
    write, args, op_id = pending
    return {"op": write.name, "id": op_id, "args": args}
