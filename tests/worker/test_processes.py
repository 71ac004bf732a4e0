"""Real `taskstore` processes: the worker CLI, SIGTERM, settings."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from importlib.metadata import version
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
from worker.producer.client import TaskStoreClient
from worker.protocol.settings import Settings


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
    assert len(stats["workers"]) == 1
    assert stats["tasks"] == 1  # the task; the raw record, which never expires, is not counted
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
        result = python("-m", "worker.tools.cli", "worker", env=bad, cwd=tmp_path)
        assert result.returncode == 2
        assert f"TASKSTORE_{name}" in result.stderr


def test_a_misspelt_variable_stops_worker_and_client_naming_the_setting(
    settings: Settings, tmp_path: Path
) -> None:
    env = settings_env(settings)
    connect = (
        "import asyncio\nfrom worker.producer.client import TaskStoreClient\n"
        "async def main():\n    async with TaskStoreClient.connect(): pass\n"
        "asyncio.run(main())"
    )
    cases = [
        ({"TASKSTORE_REDIS_URLS": settings.queue_url}, "", "TASKSTORE_REDIS_URL"),
        ({}, "TASKSTORE_MAX_JOB=10\n", "TASKSTORE_MAX_JOBS"),
    ]
    for extra, dotenv, meant in cases:
        (tmp_path / ".env").write_text(dotenv, encoding="utf-8")
        worker_run = python("-m", "worker.tools.cli", "worker", env={**env, **extra}, cwd=tmp_path)
        assert worker_run.returncode == 2
        assert f"did you mean {meant}?" in worker_run.stderr
        client_run = python("-c", connect, env={**env, **extra}, cwd=tmp_path)
        assert "SettingsError" in client_run.stderr
        assert f"did you mean {meant}?" in client_run.stderr
    # The test suite's own variables are not settings, and not errors.
    (tmp_path / ".env").write_text("", encoding="utf-8")
    ours = {**env, "TASKSTORE_TEST_ANYTHING": "1"}
    assert python("-m", "worker.tools.cli", "failed", env=ours, cwd=tmp_path).returncode == 0


def test_version_is_the_package_version() -> None:
    result = python("-m", "worker.cli", "--version", env=dict(os.environ))  # the old path works
    assert result.returncode == 0
    assert result.stdout.strip() == f"taskstore {version('taskstore')}"


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
            [sys.executable, "-m", "worker.tools.cli", "stats"],
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
