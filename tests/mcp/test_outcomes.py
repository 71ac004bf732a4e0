"""A tool's outcome always lands: refused outcomes fail the task, a failing store is retried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from store import BackendError, InMemoryBackend
from store.tasks import StoreConfig, TaskStatus, TaskStore
from store.tasks.leases import ABANDONED, RunnerLeases
from tests.harness import until
from worker.mcp_tasks.running import TaskRun

LIMIT = 2000


class FailingWrites(InMemoryBackend):
    """Conditional writes fail while ``failures`` is above zero, as a Redis away for a moment."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0
        self.seen_op_ids: list[str | None] = []

    async def put_if_version(self, key: str, data: bytes, expected_version: int, **kw: Any) -> int:
        self.seen_op_ids.append(kw.get("op_id"))
        if self.failures > 0:
            self.failures -= 1
            raise BackendError(key, "injected write failure")
        return await super().put_if_version(key, data, expected_version, **kw)


def text_result(chars: int) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": "x" * chars}]}


async def run_tool(
    backend: InMemoryBackend, result: dict[str, Any], *, lease_ms: int = 30_000
) -> tuple[TaskStore, str, RunnerLeases]:
    store = TaskStore(backend, StoreConfig(max_result_bytes=LIMIT))
    leases = RunnerLeases(store)
    record = await store.create("owner", "tools/call", 60_000)
    run = TaskRun(store, leases, record.task_id, "owner", 0.01, lease_ms)

    async def tool() -> dict[str, Any]:
        return result

    await asyncio.wait_for(run.execute(tool), 10)
    return store, record.task_id, leases


async def lease_held(leases: RunnerLeases) -> bool:
    return bool(await leases.store.backend.list_by_prefix("taskstore.leases:"))


async def test_a_result_above_the_limit_fails_the_task_naming_the_limit() -> None:
    store, task_id, leases = await run_tool(InMemoryBackend(), text_result(LIMIT))
    task = await store.get(task_id, "owner")
    assert task.status is TaskStatus.FAILED
    error: Any = task.error
    assert error["code"] == -32603
    assert str(LIMIT) in error["message"]
    assert error["data"]["limit"] == LIMIT
    assert not await lease_held(leases)


async def test_a_long_text_within_the_limit_completes() -> None:
    # One string may be far longer than a variable's 64 KiB when the result's limit allows it.
    backend = InMemoryBackend()
    store = TaskStore(backend, StoreConfig(max_result_bytes=200_000, max_string_bytes=1000))
    record = await store.create("owner", "tools/call", 60_000)
    run = TaskRun(store, None, record.task_id, "owner", 0.01)

    async def tool() -> dict[str, Any]:
        return text_result(70_000)

    await run.execute(tool)
    task = await store.get(record.task_id, "owner")
    assert task.status is TaskStatus.COMPLETED
    assert task.result == text_result(70_000)


async def test_a_result_that_is_not_json_fails_the_task() -> None:
    store, task_id, _ = await run_tool(InMemoryBackend(), {"value": float("nan")})
    task = await store.get(task_id, "owner")
    assert task.status is TaskStatus.FAILED
    error: Any = task.error
    assert "could not be stored" in error["message"]


async def test_a_failing_store_is_retried_under_one_op_id_and_the_outcome_lands() -> None:
    backend = FailingWrites()
    backend.failures = 3
    store, task_id, leases = await run_tool(backend, text_result(10))
    task = await store.get(task_id, "owner")
    assert task.status is TaskStatus.COMPLETED
    assert len(set(backend.seen_op_ids)) == 1
    assert backend.seen_op_ids[0] is not None
    assert not await lease_held(leases)


async def test_a_store_that_never_answers_leaves_the_lease_to_the_sweep() -> None:
    backend = FailingWrites()
    backend.failures = 10**6
    store, task_id, leases = await run_tool(backend, text_result(10), lease_ms=300)
    assert (await store.get(task_id, "owner")).status is TaskStatus.WORKING
    assert await lease_held(leases)  # never released with the task still working
    backend.failures = 0
    failed: list[int] = []

    async def swept() -> bool:  # once the lease has run out by the store's clock
        failed.append(await leases.fail_abandoned())
        return failed[-1] > 0

    await until(swept, 5)
    assert failed[-1] == 1
    task = await store.get(task_id, "owner")
    assert (task.status, task.task.status_message) == (TaskStatus.FAILED, ABANDONED)
