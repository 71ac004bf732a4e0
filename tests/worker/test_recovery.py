"""SIGKILL a worker mid-run, default settings: its jobs move on within a lease, exactly once."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from store import VersionedRecord, make_key
from tests.harness import unique
from tests.worker.conftest import (
    WorkerProcess,
    drop_test_keys,
    isolated_settings,
    queued_ids,
    raw_redis,
    wait_for_worker,
)
from worker.producer.client import TaskStoreClient
from worker.protocol.keys import QueueKeys, job_keys

PRODUCERS, COUNTERS, PUTS = 4, 2000, 400


@pytest.mark.slow
async def test_a_killed_worker_s_jobs_move_on_within_a_lease_exactly_once(
    redis_url: str, tmp_path: Path, measurements: list[str]
) -> None:
    settings = isolated_settings(redis_url, "kill", max_tasks_per_owner=10_000)
    redis = raw_redis(settings)
    clients = [await TaskStoreClient.open(settings) for _ in range(PRODUCERS)]
    first = WorkerProcess(settings, tmp_path / "first.log")
    second: WorkerProcess | None = None
    try:
        await wait_for_worker(settings)
        owners = [unique() for _ in range(50)]
        counters = [make_key(owners[i % 50], f"counter{i}") for i in range(COUNTERS)]
        await asyncio.gather(*(clients[0].stores.backend.put(k, b"0") for k in counters))
        plain = [make_key(owners[i % 50], f"plain{i}") for i in range(PUTS)]
        returned: dict[str, float] = {}

        async def increment(i: int, key: str) -> int:
            client = clients[i % PRODUCERS]
            record = await client.get(key)
            version = await client.put_if_version(
                key, str(int(record.data) + 1).encode(), record.version
            )
            returned[key] = time.monotonic()
            return version

        async def put(i: int, key: str) -> int:
            version = await clients[i % PRODUCERS].put(key, b"p")
            returned[key] = time.monotonic()
            return version

        calls = asyncio.gather(
            *(increment(i, k) for i, k in enumerate(counters)),
            *(put(i, k) for i, k in enumerate(plain)),
        )

        async def holding() -> bool:
            """Whether the (stopped) first worker holds a claimed job it has not answered."""
            queued = await queued_ids(redis, settings)
            async with redis.pipeline(transaction=False) as pipe:
                for job_id in queued:
                    pipe.exists(job_keys(job_id).claim)
                    pipe.exists(QueueKeys(settings.queue_name).reply(job_id))
                found = await pipe.execute()
            return any(
                claimed and not replied
                for claimed, replied in zip(found[::2], found[1::2], strict=True)
            )

        # Freeze the first worker at an instant it holds a running job, then kill it there.
        for _ in range(2000):
            first.process.send_signal(signal.SIGSTOP)
            if await holding():
                break
            first.process.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.002)
        assert await holding(), (
            "the first worker never held a job",
            len(await queued_ids(redis, settings)),
            len(returned),
            first.output()[-3000:],
        )
        second = WorkerProcess(settings, tmp_path / "second.log")
        first.stop(signal.SIGKILL)
        killed = time.monotonic()

        outcomes = await calls  # any caller's error would raise here
        assert outcomes == [2] * COUNTERS + [1] * PUTS
        recovery = max(returned.values()) - killed
        measurements.append(
            f"worker SIGKILL: last of {COUNTERS + PUTS} callers returned {recovery:.2f} s "
            f"after the kill (LEASE_S {settings.lease_s})"
        )
        # arq alone would free the dead worker's claims JOB_TIMEOUT_S + 10 s after they began.
        assert recovery < settings.job_timeout_s + 10
        assert (
            await asyncio.gather(*(clients[0].get(k) for k in counters))
            == [VersionedRecord(b"1", 2)] * COUNTERS
        )
        # Nothing is left to land later: arq runs only what its queue holds.
        assert await queued_ids(redis, settings) == []
        assert (
            await asyncio.gather(*(clients[0].get(k) for k in plain))
            == [VersionedRecord(b"p", 1)] * PUTS
        )
        assert second.alive()
    finally:
        for client in clients:
            await client.aclose()
        for process in (first, second):
            if process is not None:
                process.stop()
        await redis.aclose()
        await drop_test_keys(settings)
