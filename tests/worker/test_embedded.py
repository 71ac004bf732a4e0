"""The embedded Redis belongs to its directory: no process's exit pulls it from another user."""

from __future__ import annotations

import json
import signal
import textwrap
from pathlib import Path

import pytest
from redis.asyncio import Redis

from store import make_key
from store.redis import EmbeddedRedis
from tests.harness import unique
from tests.worker.conftest import (
    WorkerProcess,
    cli,
    isolated_settings,
    python,
    settings_env,
    wait_for_worker,
)
from worker.producer.client import TaskStoreClient
from worker.protocol.settings import Settings


@pytest.fixture
def private(tmp_path: Path) -> Settings:
    """Settings on an embedded server of this test's own directory."""
    return isolated_settings("embedded", "emb", embedded_dir=tmp_path / "data")


def _status(settings: Settings) -> dict[str, object]:
    run = cli(settings, "embedded", "status")
    status: dict[str, object] = json.loads(run.stdout)
    assert run.returncode == (0 if status["running"] else 1)
    return status


@pytest.mark.slow
async def test_a_producer_keeps_the_server_when_the_worker_that_started_it_stops(
    private: Settings, tmp_path: Path
) -> None:
    worker = WorkerProcess(private, tmp_path / "worker.log")
    try:
        await wait_for_worker(private)
        key = make_key(unique(), "t")
        async with TaskStoreClient.connect(private) as client:
            assert await client.put(key, b"kept") == 1
            assert worker.stop(signal.SIGTERM) == 0
            assert (await client.get(key)).data == b"kept"  # the server still answers
            assert _status(private)["users"] != []
        assert _status(private)["running"] is False  # its last user has left
    finally:
        worker.stop()
        EmbeddedRedis(private.embedded_dir).stop()


@pytest.mark.slow
async def test_a_killed_worker_leaves_a_server_that_status_finds_and_stop_stops(
    private: Settings, tmp_path: Path
) -> None:
    worker = WorkerProcess(private, tmp_path / "worker.log")
    try:
        await wait_for_worker(private)
        worker.stop(signal.SIGKILL)
        status = _status(private)
        assert status["running"] is True
        assert status["users"] == []  # the dead worker no longer counts
        assert isinstance(status["pid"], int)
        stopped = cli(private, "embedded", "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert _status(private)["running"] is False
    finally:
        worker.stop()
        EmbeddedRedis(private.embedded_dir).stop()


@pytest.mark.slow
async def test_two_workers_share_a_directory_and_the_last_one_out_stops_it(
    private: Settings, tmp_path: Path
) -> None:
    first = WorkerProcess(private, tmp_path / "first.log")
    second: WorkerProcess | None = None
    try:
        await wait_for_worker(private)
        second = WorkerProcess(private, tmp_path / "second.log")
        await wait_for_worker(private, count=2)
        assert cli(private, "embedded", "stop").returncode == 1  # in use: refused
        assert first.stop(signal.SIGTERM) == 0
        async with TaskStoreClient.connect(private) as client:
            assert await client.put(make_key(unique(), "t"), b"x") == 1
        assert _status(private)["running"] is True
        assert second.stop(signal.SIGTERM) == 0
        assert _status(private)["running"] is False
    finally:
        for process in (first, second):
            if process is not None:
                process.stop()
        EmbeddedRedis(private.embedded_dir).stop()


def test_a_settings_lookup_starts_nothing_that_outlives_it(private: Settings) -> None:
    env = settings_env(private)
    del env["TASKSTORE_REDIS_URL"]  # the default: embedded
    looked_up = python("-c", "import worker.main; worker.main.WorkerSettings", env=env)
    assert looked_up.returncode == 0, looked_up.stderr
    assert _status(private)["running"] is False


async def test_the_store_honours_taskstore_embedded_dir(private: Settings) -> None:
    env = settings_env(private)
    code = textwrap.dedent(
        """
        import asyncio
        from store.redis import RedisBackend

        async def main() -> None:
            backend = await RedisBackend.from_url("embedded", prefix="emb")
            await backend.put("o:t", b"in the named directory")
            await backend.aclose()

        asyncio.run(main())
        """
    )
    ran = python("-c", code, env=env)
    assert ran.returncode == 0, ran.stderr
    server = EmbeddedRedis(private.embedded_dir)
    server.acquire()  # starts it again from the directory's append-only file
    try:
        redis = Redis.from_url(server.url)
        assert [k async for k in redis.scan_iter(match="emb:*")]
        await redis.aclose()
    finally:
        server.release()
    assert not server.answers()
