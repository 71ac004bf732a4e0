"""The writes the worker executes, one coroutine per job name.

Each takes the worker's stores and the op id (the arq job id) first, then the
same parameters as the store method it calls, so the client and a direct
call agree on names and defaults.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Any

from store.backend import BatchOp, StorageBackend
from store.errors import InvalidArgument, StorageError
from store.tasks import TaskRecord, TaskStatus, TaskStore
from worker.envelope import Envelope, failure, success


@dataclass(frozen=True)
class Stores:
    backend: StorageBackend
    tasks: TaskStore


async def put(
    s: Stores,
    op_id: str,
    key: str,
    data: bytes,
    *,
    expires_at_ms: int | None = None,
    created_at_ms: int | None = None,
    max_records_per_owner: int | None = None,
) -> int:
    return await s.backend.put(
        key,
        data,
        expires_at_ms=expires_at_ms,
        created_at_ms=created_at_ms,
        op_id=op_id,
        max_records_per_owner=max_records_per_owner,
    )


async def put_if_version(
    s: Stores,
    op_id: str,
    key: str,
    data: bytes,
    expected_version: int,
    *,
    expires_at_ms: int | None = None,
    created_at_ms: int | None = None,
) -> int:
    return await s.backend.put_if_version(
        key,
        data,
        expected_version,
        expires_at_ms=expires_at_ms,
        created_at_ms=created_at_ms,
        op_id=op_id,
    )


async def delete(s: Stores, op_id: str, key: str) -> bool:
    return await s.backend.delete(key, op_id=op_id)


BATCH_FIELDS = frozenset(f.name for f in fields(BatchOp)) - {"op_id"}


async def apply_batch(s: Stores, op_id: str, ops: list[dict[str, Any]]) -> list[Envelope]:
    """Many puts and CAS ops in one job; op ``i`` runs under op id ``<job id>:<i>``."""
    if not isinstance(ops, list) or not all(
        isinstance(op, dict) and set(op) <= BATCH_FIELDS and {"key", "data"} <= set(op)
        for op in ops
    ):
        raise InvalidArgument(
            f"apply_batch takes a list of objects with fields {sorted(BATCH_FIELDS)}"
        )
    batch = [BatchOp(**op, op_id=f"{op_id}:{i}") for i, op in enumerate(ops)]
    outcomes = await s.backend.apply_batch(batch)
    return [failure(o) if isinstance(o, StorageError) else success(o) for o in outcomes]


async def create_task(
    s: Stores, op_id: str, owner_id: str, request_method: str, ttl_ms: int | None = None
) -> TaskRecord:
    return await s.tasks.create(owner_id, request_method, ttl_ms, op_id=op_id)


async def update_status(
    s: Stores,
    op_id: str,
    task_id: str,
    owner_id: str,
    status: TaskStatus | str,
    status_message: str | None = None,
) -> TaskRecord:
    return await s.tasks.update_status(task_id, owner_id, status, status_message, op_id=op_id)


async def set_variables(
    s: Stores, op_id: str, task_id: str, owner_id: str, variables: dict[str, Any]
) -> TaskRecord:
    return await s.tasks.set_variables(task_id, owner_id, variables, op_id=op_id)


async def set_result(s: Stores, op_id: str, task_id: str, owner_id: str, result: Any) -> TaskRecord:
    return await s.tasks.set_result(task_id, owner_id, result, op_id=op_id)


async def complete_with_result(
    s: Stores,
    op_id: str,
    task_id: str,
    owner_id: str,
    status: TaskStatus | str,
    result: Any,
    status_message: str | None = None,
) -> TaskRecord:
    return await s.tasks.complete_with_result(
        task_id, owner_id, status, result, status_message, op_id=op_id
    )


async def cancel_task(s: Stores, op_id: str, task_id: str, owner_id: str) -> TaskRecord:
    return await s.tasks.cancel(task_id, owner_id, op_id=op_id)


Operation = Callable[..., Awaitable[Any]]

OPERATIONS: dict[str, Operation] = {
    op.__name__: op
    for op in (
        put,
        put_if_version,
        delete,
        apply_batch,
        create_task,
        update_status,
        set_variables,
        set_result,
        complete_with_result,
        cancel_task,
    )
}
