"""Passwords never reach logs or error messages, at any log level."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import BackendError, make_key
from tests.harness import unique
from tests.servers import RedisProcess, free_ports
from tests.worker.conftest import (
    WorkerProcess,
    cli,
    drop_test_keys,
    isolated_settings,
    wait_for_worker,
)
from worker.producer.client import TaskStoreClient
from worker.protocol.settings import Settings

PASSWORD = "s3cr3t-Pa55-do-not-log"


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(free_ports(1)[0], tmp_path / "redis", password=PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _settings(url: str, tmp_path: Path) -> Settings:
    return isolated_settings(
        url,
        "sec",
        log_level="DEBUG",
        embedded_dir=tmp_path,
    )


async def test_a_debug_worker_never_logs_the_password(
    protected_redis: RedisProcess, tmp_path: Path
) -> None:
    settings = _settings(protected_redis.url, tmp_path)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        await wait_for_worker(settings)
        async with TaskStoreClient.connect(settings) as client:
            owner = unique()
            task = await client.create_task(owner, "tools/call")
            await client.complete_with_result(task.task_id, owner, "completed", {"ok": True})
            await client.put(make_key(owner, "raw"), b"x")
        assert worker.stop(signal.SIGTERM) == 0
        output = worker.output()
        assert "ready" in output
        assert "redis://:***@127.0.0.1" in output
        assert PASSWORD not in output
    finally:
        worker.stop()
        await drop_test_keys(settings)


def test_a_wrong_password_stops_the_worker_at_once_without_showing_it(
    protected_redis: RedisProcess, tmp_path: Path
) -> None:
    wrong = protected_redis.url.replace(PASSWORD, "wrong-Pa55-also-secret")
    result = cli(_settings(wrong, tmp_path), "worker")
    assert result.returncode == 1
    assert f"redis://:***@127.0.0.1:{protected_redis.port}/0" in result.stderr
    assert "AuthenticationError" in result.stderr
    assert "wrong-Pa55-also-secret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


async def test_a_client_with_a_wrong_password_fails_without_showing_it(
    protected_redis: RedisProcess, tmp_path: Path
) -> None:
    wrong = protected_redis.url.replace(PASSWORD, "wrong-Pa55-also-secret")
    with pytest.raises(BackendError) as err:
        await TaskStoreClient.open(_settings(wrong, tmp_path))
    assert "wrong-Pa55-also-secret" not in str(err.value)
    assert "***" in str(err.value)
