"""Durable tools on the worker: one run however long they take, and an outcome that lands."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from store.tasks import TaskRecord, TaskStatus
from tests.harness import unique, until
from tests.mcp.durable_tools import STARTS
from tests.worker.conftest import drop_test_keys, isolated_settings, running_worker
from worker.mcp_tasks import durable
from worker.producer.client import TaskStoreClient
from worker.producer.queue import enqueue, job_payload
from worker.protocol.serialization import serialize
from worker.protocol.settings import Settings
from worker.tools.failed import list_failed


@pytest.fixture
async def settings(redis_url: str) -> AsyncIterator[Settings]:
    settings = isolated_settings(
        redis_url, "durable", lease_s=0.5, mcp_tool_modules="tests.mcp.durable_tools"
    )
    yield settings
    await drop_test_keys(settings)


async def run_durable(client: TaskStoreClient, tool: str, **arguments: Any) -> TaskRecord:
    """A task whose work is the durable ``tool``, enqueued as the extension does; once ended."""
    owner = unique()
    task = await client.stores.tasks.create(owner, "tools/call", 60_000)
    kwargs = {"task_id": task.task_id, "owner_id": owner, "tool": tool, "arguments": arguments}
    payload = job_payload(durable.JOB, b"[]", serialize(kwargs))
    assert await enqueue(client.pool, client.settings.queue_name, f"tool-{task.task_id}", payload)

    async def ended() -> bool:
        return (await client.get_task(task.task_id, owner)).status.terminal

    await until(ended, timeout_s=30)
    return await client.get_task(task.task_id, owner)


async def test_a_durable_tool_running_three_leases_runs_once_on_two_workers(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    marker = unique("m")
    with caplog.at_level(logging.WARNING):
        async with (
            running_worker(settings),
            running_worker(settings),
            TaskStoreClient.connect(settings) as client,
        ):
            task = await run_durable(client, "counted_sleep", marker=marker, seconds=1.6)
            assert task.status is TaskStatus.COMPLETED
            result: Any = task.result
            assert result["content"][0]["text"] == marker
            assert STARTS[marker] == 1
            assert await list_failed(client.pool, settings.queue_name, 10) == []
    arq_errors = [r for r in caplog.records if r.name.startswith("arq") and r.levelno >= 40]
    assert arq_errors == []
    assert not [r for r in caplog.records if "lost its lease" in r.getMessage()]


async def test_a_durable_result_the_store_refuses_fails_the_task_naming_the_limit(
    settings: Settings,
) -> None:
    async with running_worker(settings), TaskStoreClient.connect(settings) as client:
        limit = settings.max_result_bytes
        task = await run_durable(client, "long_text", chars=limit + 1)
        assert task.status is TaskStatus.FAILED
        error: Any = task.error
        assert error["data"]["limit"] == limit
        assert str(limit) in error["message"]
        # Far above a variable's 64 KiB string, within the result's limit: it completes.
        task = await run_durable(client, "long_text", chars=70_000)
        assert task.status is TaskStatus.COMPLETED
