"""A tool running as a task keeps running through a failed read of its task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from store import BackendError, InMemoryBackend, VersionedRecord
from store.tasks import TaskStatus, TaskStore
from worker.mcp_tasks.running import TaskRun


class FailingReads(InMemoryBackend):
    """Reads fail while ``failures`` is above zero, as a Redis that went away for a moment."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0
        self.exhausted = asyncio.Event()

    async def get(self, key: str) -> VersionedRecord:
        if self.failures > 0:
            self.failures -= 1
            if self.failures == 0:
                self.exhausted.set()
            raise BackendError(key, "injected read failure")
        return await super().get(key)


async def test_a_failed_read_of_the_task_does_not_stop_its_tool() -> None:
    backend = FailingReads()
    store = TaskStore(backend)
    record = await store.create("owner", "tools/call", 60_000)
    run = TaskRun(store, None, record.task_id, "owner", poll_s=0.01)

    async def tool() -> dict[str, Any]:
        backend.failures = 3
        await backend.exhausted.wait()  # the watch has met three failed reads
        return {"content": [{"type": "text", "text": "done"}]}

    await asyncio.wait_for(run.execute(tool), 10)
    finished = await store.get(record.task_id, "owner")
    assert finished.status is TaskStatus.COMPLETED
    assert finished.result == {"content": [{"type": "text", "text": "done"}]}
