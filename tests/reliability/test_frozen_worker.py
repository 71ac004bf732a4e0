"""A worker frozen (SIGSTOP) past its leases while it holds a batch, another worker alive:
the other takes the batch over; the frozen one, once it runs again, answers nothing it no
longer holds. Each write applies once, each caller gets one answer and it is the store's."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from store import NotFound, make_key
from tests.harness import unique, until
from tests.servers import RedisProcess, free_ports
from tests.worker.conftest import (
    WorkerProcess,
    drop_test_keys,
    isolated_settings,
    raw_redis,
)
from worker.producer.client import TaskStoreClient
from worker.producer.queue import enqueue, job_payload, wait_reply
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.serialization import deserialize, serialize

JOBS = 20


@pytest.mark.slow
@pytest.mark.parametrize("late", [False, True], ids=["on-time", "past-its-deadline"])
async def test_a_frozen_worker_s_batch_is_taken_over_and_answered_once(
    redis_url: str, tmp_path: Path, late: bool, measurements: list[str]
) -> None:
    store = RedisProcess(free_ports(1)[0], tmp_path / "store-redis")  # not "store": the cwd
    store.start()
    admin = store.client()
    settings = isolated_settings(
        redis_url,
        "frozen",
        store_url=store.url,
        lease_s=1,
        job_timeout_s=2,
        reply_timeout_s=60,
        worker_id_file=tmp_path / "first.id",
    )
    redis = raw_redis(settings)
    keys = QueueKeys(settings.queue_name)
    writes = {unique("job"): make_key(unique(), "k") for _ in range(JOBS)}
    first: WorkerProcess | None = None
    second: WorkerProcess | None = None
    try:
        for job_id, key in writes.items():
            # Late jobs: a wait of 1 ms, past before any worker can take them.
            payload = job_payload("put", serialize([key, b"x"]), b"{}", wait_ms=1 if late else None)
            assert (await enqueue(redis, settings.queue_name, job_id, payload)).added  # type: ignore[arg-type]
        # Every store write waits 2 s from now: the first worker claims the jobs and waits.
        admin.execute_command("CLIENT", "PAUSE", 2000, "WRITE")  # type: ignore[no-untyped-call]
        first = WorkerProcess(settings, tmp_path / "first.log")
        await until(lambda: (tmp_path / "first.id").exists(), 30)
        worker_id = (tmp_path / "first.id").read_text().strip()

        async def held_by(prefix: str) -> int:
            claims = [await redis.get(job_keys(j).claim) for j in writes]
            return sum(1 for c in claims if c is not None and c.decode().startswith(prefix))

        async def holds_all() -> bool:
            return await held_by(worker_id + ":") == JOBS

        await until(holds_all, 30)
        first.process.send_signal(signal.SIGSTOP)
        frozen = asyncio.get_running_loop().time()
        second = WorkerProcess(settings, tmp_path / "second.log")
        replies = [await wait_reply(redis, settings.queue_name, j, 60) for j in writes]  # type: ignore[arg-type]
        taken_over = asyncio.get_running_loop().time() - frozen
        first.process.send_signal(signal.SIGCONT)
        await until(lambda: "to the workers that took them over" in first.output(), 30)

        async with TaskStoreClient.connect(settings) as client:
            for (job_id, key), reply in zip(writes.items(), replies, strict=True):
                assert reply is not None
                if late:  # withdrawn by whichever worker took it, applied by none
                    assert reply["error"]["type"] == "DeadlineExceeded", reply
                    with pytest.raises(NotFound):
                        await client.get(key)
                else:  # applied once, whichever worker ran it first
                    assert reply == {"ok": True, "value": 1}
                    assert (await client.get(key)).version == 1
                # One answer: the frozen worker, back, pushed nothing for jobs it lost.
                assert await redis.llen(keys.reply(job_id)) == 1  # type: ignore[misc]
                result = deserialize(await redis.get(job_keys(job_id).result))
                assert result["t"] == 2  # claimed by the first, then the second; no more
        log = first.output()
        assert "storage failed" not in log  # a pause is not the store's failure
        assert "BackendError" not in log
        measurements.append(
            f"frozen worker ({'late' if late else 'on-time'} jobs): {JOBS} jobs taken over and "
            f"answered once each {taken_over:.2f} s after the freeze (LEASE_S 1 s)"
        )
    finally:
        for process in (first, second):
            if process is not None:
                process.process.send_signal(signal.SIGCONT)
                process.stop()
        admin.close()
        store.stop()
        await redis.aclose()
        await drop_test_keys(settings)
