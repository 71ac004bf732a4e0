"""The writes the worker executes, one coroutine per job name.

Each takes the worker's stores and the op id (the arq job id) first, then the
same parameters as the store method it calls, so the client and a direct
call agree on names and defaults.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from store.backend import StorageBackend
from store.tasks import TaskRecord, TaskStatus, TaskStore


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
        create_task,
        update_status,
        set_variables,
        set_result,
        complete_with_result,
        cancel_task,
    )
}
