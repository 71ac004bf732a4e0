"""Worker logs: one line per batch of jobs, never a payload, JSON throughout, each line once."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from store import make_key
from tests.harness import unique
from tests.worker.conftest import WorkerProcess, drop_test_keys, isolated_settings, wait_for_worker
from worker.producer.client import TaskStoreClient

ENTRY_POINTS = {
    "taskstore worker": ("worker.tools.cli", "worker"),
    "arq worker.main.WorkerSettings": ("arq", "worker.main.WorkerSettings"),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("fmt", ["json", "plain"])
async def test_worker_output_holds_no_payload_and_each_line_once(
    redis_url: str, tmp_path: Path, entry: str, fmt: str
) -> None:
    settings = isolated_settings(redis_url, "logs", log_format=fmt)
    marker = f"secret-payload-{unique()}"
    worker = WorkerProcess(settings, tmp_path / "worker.log", ENTRY_POINTS[entry])
    try:
        await wait_for_worker(settings)
        owner = unique()
        async with TaskStoreClient.connect(settings) as client:
            await client.put(make_key(owner, "raw"), marker.encode())
            await client.put(make_key(owner, "alone"), marker.encode(), coalesce=False)
            task = await client.create_task(owner, "tools/call")
            await client.set_variables(task.task_id, owner, {"note": marker})
            await client.complete_with_result(task.task_id, owner, "completed", {"text": marker})
        assert worker.stop(signal.SIGTERM) == 0
    finally:
        worker.stop()
        await drop_test_keys(settings)
    output = worker.output()
    assert marker not in output
    lines = [line for line in output.splitlines() if line.strip()]
    if fmt == "json":
        records = [json.loads(line) for line in lines]  # every line is JSON
        batches = [r for r in records if r["logger"] == "taskstore.jobs"]
        # Five jobs one after another: a batch each, and no line per successful job at INFO.
        assert sum(r["jobs"] for r in batches) == 5
        assert sum(sum(r["outcomes"].values()) for r in batches) == 5
        assert all({"writes", "verdicts", "duration_ms"} <= set(r) for r in batches)
        assert not [r for r in batches if "job_id" in r]
    assert sum("Starting worker for" in line for line in lines) == 1
    assert sum(" ready: queue" in line for line in lines) == 1
    assert sum("shutdown on SIGTERM ◆" in line or "shutdown on SIGTERM \\u25c6" in line
               for line in lines) == 1  # fmt: skip


def test_a_settings_error_is_a_json_line_in_json_mode(tmp_path: Path) -> None:
    from tests.worker.conftest import python

    env = {"TASKSTORE_LOG_FORMAT": "json", "TASKSTORE_MAX_JOBS": "-1", "PATH": "/usr/bin:/bin"}
    ran = python("-m", "worker.tools.cli", "worker", env=env, cwd=tmp_path)
    assert ran.returncode == 2
    [line] = [line for line in ran.stderr.splitlines() if line.strip()]
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert "TASKSTORE_MAX_JOBS" in record["message"]
