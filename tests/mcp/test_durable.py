"""Durable tools on the worker: one run however long they take, and an outcome that lands."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from store import make_key
from store.tasks import TaskRecord, TaskStatus
from tests.harness import unique, until
from tests.mcp.durable_tools import STARTS
from tests.worker.conftest import drop_test_keys, isolated_settings, running_worker
from worker.mcp_tasks import durable
from worker.producer.client import TaskStoreClient
from worker.producer.queue import enqueue, job_payload
from worker.protocol.serialization import serialize
from worker.protocol.settings import Settings
from worker.runtime.context import STATE
from worker.tools.failed import list_failed


@pytest.fixture
async def settings(redis_url: str) -> AsyncIterator[Settings]:
    settings = isolated_settings(
        redis_url, "durable", lease_s=1, mcp_tool_modules="tests.mcp.durable_tools"
    )
    yield settings
    await drop_test_keys(settings)


async def run_durable(client: TaskStoreClient, tool: str, **arguments: Any) -> TaskRecord:
    """A task whose work is the durable ``tool``, enqueued as the extension does; once ended."""
    owner = unique()
    task = await client.stores.tasks.create(owner, "tools/call", 60_000)
    kwargs = {"task_id": task.task_id, "owner_id": owner, "tool": tool, "arguments": arguments}
    payload = job_payload(durable.JOB, b"[]", serialize(kwargs))
    job_id = f"tool-{task.task_id}"
    assert (await enqueue(client.pool, client.settings.queue_name, job_id, payload)).added

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
            task = await run_durable(client, "counted_sleep", marker=marker, seconds=3.2)
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


async def test_a_durable_tool_past_job_timeout_s_fails_its_task_naming_the_limit(
    redis_url: str,
) -> None:
    settings = isolated_settings(
        redis_url, "durable-late", job_timeout_s=1, mcp_tool_modules="tests.mcp.durable_tools"
    )
    marker = unique("m")
    try:
        async with running_worker(settings), TaskStoreClient.connect(settings) as client:
            task = await run_durable(client, "counted_sleep", marker=marker, seconds=30)
            assert task.status is TaskStatus.FAILED
            error: Any = task.error
            assert "JOB_TIMEOUT_S (1 s)" in error["message"]

            async def recorded() -> bool:
                return bool(await list_failed(client.pool, settings.queue_name, 10))

            await until(recorded)
            [failed] = await list_failed(client.pool, settings.queue_name, 10)
            assert (failed.function, failed.error) == (durable.JOB, "TimeoutError")
            assert STARTS[marker] == 1
    finally:
        await drop_test_keys(settings)


async def test_the_hand_off_to_arq_stays_bounded_and_writes_never_wait_behind_it(
    redis_url: str,
) -> None:
    """One durable tool runs, arq can take no other (MAX_JOBS 1), hundreds more wait: the
    list handed to arq holds at most MAX_JOBS, and writes sent after them all run at once."""
    settings = isolated_settings(
        redis_url, "handoff", max_jobs=1, mcp_tool_modules="tests.mcp.durable_tools"
    )
    marker = unique("m")
    try:
        async with (
            running_worker(settings) as worker,
            TaskStoreClient.connect(settings) as client,
        ):
            owner = unique()
            slow = await client.stores.tasks.create(owner, "tools/call", 60_000)
            waiting = [
                await client.stores.tasks.create(owner, "tools/call", 60_000) for _ in range(600)
            ]
            for task, seconds in [(slow, 30.0), *((t, 0.0) for t in waiting)]:
                kwargs = {
                    "task_id": task.task_id,
                    "owner_id": owner,
                    "tool": "counted_sleep",
                    "arguments": {"marker": marker, "seconds": seconds},
                }
                payload = job_payload(durable.JOB, b"[]", serialize(kwargs))
                job_id = f"tool-{task.task_id}"
                assert (await enqueue(client.pool, settings.queue_name, job_id, payload)).added
            await until(lambda: STARTS[marker] == 1)
            handed = worker.ctx[STATE].batches._for_arq
            sizes = []
            for i in range(50):
                assert await client.put(make_key(unique(), f"w{i}"), b"x") == 1
                sizes.append(len(handed))
            # The slow tool still runs: the writes did not wait for the jobs behind it.
            assert (await client.get_task(slow.task_id, owner)).status is TaskStatus.WORKING
            assert STARTS[marker] == 1
            assert max(sizes) <= settings.max_jobs
    finally:
        await drop_test_keys(settings)
