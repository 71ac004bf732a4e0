"""The largest jobs and batches the limits allow never hold the worker's event loop for more
than a quarter of a lease: renewals and heartbeats go on, no claim is lost."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging

import pytest

from tests.harness import unique, until
from tests.worker.conftest import drop_test_keys, isolated_settings, raw_redis, running_worker
from worker.producer.queue import enqueue, job_payload, wait_reply
from worker.protocol.keys import QueueKeys
from worker.protocol.writes import MAX_JOB_BYTES, MAX_OPS_PER_JOB

SMALL_JOBS, BIG_JOBS = 15, 3


def _ops_job(owner: str, writes: int, data: bytes) -> bytes:
    encoded = base64.b64encode(data).decode()
    ops = [
        {
            "op": "put",
            "id": f"{owner}-{i}",
            "args": {"key": f"{owner}:k{i}", "data": {"__bytes__": encoded}},
        }
        for i in range(writes)
    ]
    return job_payload("ops", json.dumps([ops]).encode(), b"{}")


class LoopWatch:
    """The longest the event loop went without running a task that asked to wake every 5 ms."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            self.longest = max(self.longest, loop.time() - before - 0.005)

    def __enter__(self) -> LoopWatch:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.mark.slow
async def test_the_largest_batches_stall_the_loop_less_than_a_quarter_lease(
    redis_url: str, caplog: pytest.LogCaptureFixture, measurements: list[str]
) -> None:
    # The shortest lease the settings allow: the strictest bound.
    settings = isolated_settings(
        redis_url, "stall", lease_s=1, job_timeout_s=300, keep_result_s=120
    )
    owners = [unique("stall") for _ in range(SMALL_JOBS + BIG_JOBS)]
    payloads = [_ops_job(o, MAX_OPS_PER_JOB, b"x") for o in owners[:SMALL_JOBS]]
    # The largest a job may be: two records of about half of it each.
    record = b"y" * ((MAX_JOB_BYTES - 4096) // 2 * 3 // 4 - 512)
    payloads += [_ops_job(o, 2, record) for o in owners[SMALL_JOBS:]]
    assert all(len(p) <= MAX_JOB_BYTES for p in payloads)
    redis = raw_redis(settings)
    try:
        ids = [unique("job") for _ in payloads]
        for job_id, payload in zip(ids, payloads, strict=True):
            assert (await enqueue(redis, settings.queue_name, job_id, payload)).added  # type: ignore[arg-type]
        reply_keys = [QueueKeys(settings.queue_name).reply(i) for i in ids]

        async def all_answered() -> bool:  # decoding the replies here would stall the loop
            return bool(await redis.exists(*reply_keys) == len(ids))

        # The worker runs in this process, whose heap holds the whole suite's objects: set
        # apart from the collector, as a worker process's own heap would be, they do not
        # lengthen its full collections (by 300 ms with a few million objects).
        gc.collect()
        gc.freeze()
        try:
            with caplog.at_level(logging.WARNING, logger="taskstore.jobs"):
                async with running_worker(settings):
                    with LoopWatch() as watch:
                        await until(all_answered, 120)
        finally:
            gc.unfreeze()
        replies = [await wait_reply(redis, settings.queue_name, i, 1) for i in ids]  # type: ignore[arg-type]
        for reply in replies:
            assert reply is not None
            assert reply["ok"] is True
            assert {e["ok"] for e in reply["value"]} == {True}
        writes = sum(len(r["value"]) for r in replies)
        assert writes == SMALL_JOBS * MAX_OPS_PER_JOB + BIG_JOBS * 2
        measurements.append(
            f"stall: {SMALL_JOBS} jobs of {MAX_OPS_PER_JOB} writes and {BIG_JOBS} of "
            f"{len(payloads[-1]) / 2**20:.1f} MiB held the worker's loop at most "
            f"{watch.longest * 1000:.0f} ms (LEASE_S {settings.lease_s} s, a quarter "
            f"{settings.lease_s / 4 * 1000:.0f} ms)"
        )
        assert watch.longest <= settings.lease_s / 4
        assert not [r for r in caplog.records if "lease" in r.getMessage()]
    finally:
        await redis.aclose()
        await drop_test_keys(settings)
