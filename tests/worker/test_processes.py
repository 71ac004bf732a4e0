"""Real `taskstore` processes: the worker CLI, SIGTERM, settings."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store import VersionConflict, make_key
from tests.harness import unique
from tests.worker.conftest import (
    WorkerProcess,
    cli,
    drop_test_keys,
    python,
    settings_env,
    wait_for_worker,
)
from worker.client import TaskStoreClient
from worker.settings import Settings


@pytest.fixture
async def worker_process(settings: Settings, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    process = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        await wait_for_worker(settings)
        yield process
    finally:
        process.stop()
        await drop_test_keys(settings)


async def test_a_cli_worker_serves_the_client(
    settings: Settings, worker_process: WorkerProcess
) -> None:
    owner = unique()
    async with TaskStoreClient.connect(settings) as client:
        key = make_key(unique(), "t")
        assert await client.put(key, b"a") == 1
        with pytest.raises(VersionConflict) as err:
            await client.put_if_version(key, b"b", 5)
        assert (err.value.expected, err.value.actual) == (5, 1)
        task = await client.create_task(owner, "tools/call")
        await client.complete_with_result(task.task_id, owner, "completed", [1])
        assert await client.get_result(task.task_id, owner) == [1]
    health = cli(settings, "health")
    assert health.returncode == 0, health.stderr
    stats_run = cli(settings, "stats")
    assert stats_run.returncode == 0, stats_run.stderr
    stats = json.loads(stats_run.stdout)
    assert stats["workers_alive"] == 1
    assert stats["tasks"] == 2  # the raw record and the task
    got = cli(settings, "get", owner, task.task_id)
    assert got.returncode == 0, got.stderr
    shown = json.loads(got.stdout)
    assert shown["task"]["status"] == "completed"
    listing = cli(settings, "list", owner)
    assert listing.returncode == 0, listing.stderr
    listed = json.loads(listing.stdout)
    assert [t["task"]["taskId"] for t in listed["tasks"]] == [task.task_id]
    assert worker_process.stop(signal.SIGTERM) == 0
    assert cli(settings, "health").returncode == 1


async def test_sigterm_lets_running_jobs_finish(
    settings: Settings, worker_process: WorkerProcess
) -> None:
    owner = unique()
    async with TaskStoreClient.connect(settings) as client:
        handles = [await client.enqueue_put(make_key(owner, f"t{i}"), b"x") for i in range(50)]
        await asyncio.sleep(0.02)
        worker_process.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker_process.process.wait, 30) == 0
        finished = 0
        for handle in handles:
            try:
                assert await handle.result(0.5) == 1
                finished += 1
            except TimeoutError:
                pass
        # Whatever the worker took, it finished; nothing is half done.
        assert await client.count(owner) == finished
    assert "shutdown on SIGTERM" in worker_process.output()


def test_env_and_dotenv_are_honoured_and_bad_values_named(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "TASKSTORE_QUEUE_NAME=from-dotenv\nTASKSTORE_MAX_JOBS=7\n", encoding="utf-8"
    )
    env = settings_env(settings)
    del env["TASKSTORE_QUEUE_NAME"], env["TASKSTORE_MAX_JOBS"]
    code = (
        "from worker.settings import load_settings as l; s = l(); print(s.queue_name, s.max_jobs)"
    )
    assert python("-c", code, env=env, cwd=tmp_path).stdout.split() == ["from-dotenv", "7"]
    env["TASKSTORE_MAX_JOBS"] = "9"
    assert python("-c", code, env=env, cwd=tmp_path).stdout.split() == ["from-dotenv", "9"]

    for name, value in [("MAX_JOBS", "lots"), ("SWEEP_INTERVAL_S", "7"), ("LOG_FORMAT", "xml")]:
        bad = {**env, f"TASKSTORE_{name}": value}
        result = python("-m", "worker.cli", "worker", env=bad, cwd=tmp_path)
        assert result.returncode == 2
        assert f"TASKSTORE_{name}" in result.stderr


def test_env_example_documents_every_setting() -> None:
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    documented = {
        line.split("=", 1)[0] for line in example.splitlines() if line.startswith("TASKSTORE_")
    }
    assert documented == {f"TASKSTORE_{name.upper()}" for name in Settings.model_fields}


def test_a_reader_that_goes_away_ends_a_command_quietly(settings: Settings) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # as `taskstore stats | head -0` would
    try:
        result = subprocess.run(
            [sys.executable, "-m", "worker.cli", "stats"],
            env=settings_env(settings),
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert result.returncode == 1
    assert result.stderr == ""
