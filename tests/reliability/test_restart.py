"""A Redis restart: the worker reconnects by itself and no acknowledged write is lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from store import BackendError, VersionedRecord, make_key
from tests.harness import unique
from tests.servers import RedisProcess, free_ports
from tests.worker.conftest import WorkerProcess, isolated_settings, wait_for_worker
from worker.producer.client import TaskStoreClient


@pytest.mark.slow
async def test_worker_survives_a_redis_restart_and_keeps_acknowledged_writes(
    tmp_path: Path,
) -> None:
    # Persistence on, so what Redis acknowledged survives its own restart.
    server = RedisProcess(
        free_ports(1)[0], tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always"
    )
    server.start()
    settings = isolated_settings(
        server.url,
        "restart",
        reply_timeout_s=2,
        embedded_dir=tmp_path,
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        await wait_for_worker(settings)
        owner = unique()
        acknowledged: dict[str, int] = {}
        async with TaskStoreClient.connect(settings) as client:
            for i in range(50):
                key = make_key(owner, f"t{i}")
                acknowledged[key] = await client.put(key, str(i).encode())

            server.stop()
            # During the gap, calls fail instead of hanging.
            started = time.monotonic()
            with pytest.raises((BackendError, TimeoutError)):
                await client.put(make_key(owner, "gap"), b"x")
            with pytest.raises(BackendError):
                await client.get(make_key(owner, "t0"))
            assert time.monotonic() - started < 5
            await asyncio.sleep(2)

            server.start()
            back = time.monotonic()
            while True:
                try:
                    await client.put(make_key(owner, "after"), b"x")
                    break
                except (BackendError, TimeoutError):
                    assert time.monotonic() - back < 5, worker.output()[-2000:]
                    await asyncio.sleep(0.2)
            for i, (key, version) in enumerate(acknowledged.items()):
                assert await client.get(key) == VersionedRecord(str(i).encode(), version)
        assert worker.alive()
    finally:
        worker.stop()
        server.stop()
