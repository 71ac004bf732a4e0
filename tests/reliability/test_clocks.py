"""Clocks that disagree change nothing: workers and producers run under libfaketime
(Debian's ``faketime``), 11 s and 2.5 s behind or ahead of the Redis server, and every
time the queue compares is still the queue's own."""

from __future__ import annotations

import asyncio
import glob
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from store import NotFound, make_key
from tests.harness import unique
from tests.worker.conftest import (
    WorkerProcess,
    drop_test_keys,
    isolated_settings,
    raw_redis,
    settings_env,
    wait_for_worker,
)
from worker.producer.client import TaskStoreClient
from worker.producer.queue import wait_reply
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.settings import Settings

LIBFAKETIME = next(iter(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")), None)
pytestmark = pytest.mark.skipif(
    LIBFAKETIME is None, reason="libfaketime is not installed (.ci/run installs faketime)"
)

PUTS, GIVEN_UP = 100, 10


def faketime(offset: str) -> dict[str, str]:
    """The environment that shifts a process's clocks by ``offset`` (``-11s``), preloaded
    into the process itself, so signals reach it (the ``faketime`` command forks)."""
    assert LIBFAKETIME is not None
    return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": offset, "FAKETIME_DONT_RESET": "1"}


async def produce(settings: Settings, offset: str, *args: str) -> Any:
    """What ``tests.reliability.clock_producer`` printed, run with its clock at ``offset``."""
    argv = [sys.executable, "-m", "tests.reliability.clock_producer", *args]
    run = await asyncio.to_thread(
        subprocess.run,
        argv,
        env={**settings_env(settings), **faketime(offset)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


async def come_back(settings: Settings, job_id: str, job: str) -> Any:
    """What a failover can do: bring back a copy of a job its caller gave up on, as a re-run
    that no longer says how long its caller waited; the reply it gets."""
    redis = raw_redis(settings)
    try:
        copy = json.loads(job)
        copy.pop("wait_ms")
        copy.pop("reply_to")  # answered on a list of its own, read here
        await redis.set(job_keys(job_id).job, json.dumps(copy), px=60_000)
        await redis.set(job_keys(job_id).tries, 1, px=60_000)
        await redis.zadd(QueueKeys(settings.queue_name).writes, {job_id: 0})
        return await wait_reply(redis, settings.queue_name, job_id, 20)  # type: ignore[arg-type]
    finally:
        await redis.aclose()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("worker_clock", "producer_clock"), [("-11s", "+11s"), ("-2.5s", "-11s"), ("+11s", "-2.5s")]
)
async def test_workers_and_producers_whose_clocks_disagree_keep_every_promise(
    redis_url: str, tmp_path: Path, worker_clock: str, producer_clock: str, measurements: list[str]
) -> None:
    settings = isolated_settings(redis_url, "clocks", reply_timeout_s=10)
    idle = isolated_settings(redis_url, "clocks-idle", reply_timeout_s=0.5)  # no worker yet
    workers: list[WorkerProcess] = []
    try:
        workers.append(WorkerProcess(settings, tmp_path / "worker.log", env=faketime(worker_clock)))
        await wait_for_worker(settings)
        done = await produce(settings, producer_clock, "puts", unique(), str(PUTS))
        assert [outcome for outcome, _ in done] == [1] * PUTS
        slowest = max(ms for _, ms in done)
        assert slowest < 100, done

        # Told "not applied" (no worker alive), each job's copy coming back never applies.
        owner = unique()
        given = await produce(idle, producer_clock, "given_up", owner, str(GIVEN_UP))
        assert {outcome for _, _, outcome in given} == {"NoWorkerAlive"}
        workers.append(
            WorkerProcess(idle, tmp_path / "idle-worker.log", env=faketime(worker_clock))
        )
        async with TaskStoreClient.connect(idle) as client:
            for i, (job_id, job, _) in enumerate(given):
                reply = await come_back(idle, job_id, job)
                assert reply["value"][0]["error"]["type"] == "OpWithdrawn", reply
                with pytest.raises(NotFound):
                    await client.get(make_key(owner, f"k{i}"))
        measurements.append(
            f"clocks (worker {worker_clock}, producer {producer_clock}): {PUTS} puts, the "
            f"slowest {slowest} ms by the queue's clock; {GIVEN_UP} given up, none applied later"
        )
    finally:
        for worker in workers:
            worker.stop()
        await drop_test_keys(settings)
        await drop_test_keys(idle)


@pytest.mark.slow
async def test_two_producers_5_s_apart_retrying_one_op_id(redis_url: str, tmp_path: Path) -> None:
    """The first gives up on its attempt (no worker alive) and the queue loses the job; the
    other, whose clock is 5 s behind, sends the write again later under the same op id.
    A copy of the first attempt coming back is refused; the retry applies, once."""
    settings = isolated_settings(redis_url, "retrying", reply_timeout_s=0.5)
    key = make_key(unique(), "k")
    worker: WorkerProcess | None = None
    try:
        job_id, job, outcome = await produce(settings, "+5s", "put", key, "the-op")
        assert outcome == "NoWorkerAlive"
        worker = WorkerProcess(settings, tmp_path / "worker.log")
        await wait_for_worker(settings)
        reply = await come_back(settings, job_id, job)
        assert reply["value"][0]["error"]["type"] == "OpWithdrawn"
        _, _, again = await produce(settings, "+0s", "put", key, "the-op")
        assert again == 1
        async with TaskStoreClient.connect(settings) as client:
            assert (await client.get(key)).version == 1
            # Sent once more, it replays: the write applied once.
            _, _, replayed = await produce(settings, "-5s", "put", key, "the-op")
            assert replayed == 1
            assert (await client.get(key)).version == 1
    finally:
        if worker is not None:
            worker.stop()
        await drop_test_keys(settings)
