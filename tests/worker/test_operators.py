"""What an operator sees: stats, health, failed jobs and their retry, metrics."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq.constants import retry_key_prefix
from pydantic import SecretStr

from store import BackendError, make_key
from tests.harness import unique, until
from tests.processes import dies_with_parent, reaped
from tests.servers import RedisProcess, free_ports
from tests.worker.conftest import (
    WorkerProcess,
    cli,
    drop_test_keys,
    isolated_settings,
    python,
    raw_redis,
    running_worker,
    settings_env,
    wait_for_worker,
)
from worker.producer.client import TaskStoreClient
from worker.producer.queue import enqueue, job_payload
from worker.protocol.errors import FailedJobNotKept
from worker.protocol.serialization import serialize
from worker.protocol.settings import Settings
from worker.runtime import queue_stats
from worker.runtime.context import state
from worker.tools.failed import discard, find_failed


@pytest.fixture
async def settings(redis_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    settings = isolated_settings(
        redis_url,
        "ops",
        max_tries=2,
        failed_jobs_keep=3,
        reply_timeout_s=10,
        worker_id_file=tmp_path / "worker-id",
    )
    yield settings
    await drop_test_keys(settings)


async def taskstore(settings: Settings, *args: str) -> tuple[int, Any]:
    """``taskstore *args`` off the event loop (an in-process worker keeps running), JSON out."""
    run = await asyncio.to_thread(cli, settings, *args)
    out = run.stdout.strip()
    return run.returncode, json.loads(out) if out.startswith(("{", "[")) else run.stderr


async def plant(client: TaskStoreClient, payload: bytes, *, tries_used: int = 0) -> str:
    """Put a job on the queue as a producer that skips the enqueue script would.

    ``tries_used`` spends tries, as a worker dying under the job would.
    """
    job_id, queue = unique("job"), client.settings.queue_name
    redis: Any = client.pool
    if tries_used:
        await redis.set(retry_key_prefix + job_id, tries_used)
    await redis.set(f"arq:job:{job_id}", payload, px=60_000)
    await redis.zadd(queue, {job_id: int(time.time() * 1000)})
    await redis.lpush(f"{queue}:wake", 1)
    return job_id


def put_job(key: str, data: bytes) -> bytes:
    return job_payload("put", serialize([key, data]), serialize({}))


async def test_failed_jobs_are_kept_without_data_and_retried_once(settings: Settings) -> None:
    marker = f"marker-{unique()}".encode()
    key = make_key(unique(), "t")
    async with running_worker(settings), TaskStoreClient.connect(settings) as client:
        # Out of tries before it ran (as after a worker died twice under it): it failed.
        spent = await plant(client, put_job(key, marker), tries_used=settings.max_tries)
        garbage = await plant(client, b"not json")
        code, listed = await taskstore(settings, "failed")
        while code != 0 or len(listed) < 2:
            await asyncio.sleep(0.05)
            code, listed = await taskstore(settings, "failed")
        by_id = {j["job_id"]: j for j in listed}
        assert by_id[spent]["function"] == "put"
        assert by_id[spent]["error"] == "JobExecutionFailed"
        assert by_id[spent]["tries"] == settings.max_tries + 1
        assert by_id[spent]["retryable"] is True
        assert by_id[garbage]["function"] == "refuse"
        assert by_id[garbage]["retryable"] is False
        shown = json.dumps(listed)
        assert marker.decode() not in shown
        assert base64.b64encode(marker).decode() not in shown

        code, retried = await taskstore(settings, "retry", spent)
        assert code == 0, retried
        assert retried["outcomes"] == {"ok": 1}
        record = await client.get(key)
        assert (record.data, record.version) == (marker, 1)
        # Its record is let go; a second retry is refused and changes nothing.
        code, listed = await taskstore(settings, "failed")
        assert [j["job_id"] for j in listed] == [garbage]
        assert (await taskstore(settings, "retry", spent))[0] == 1
        assert (await taskstore(settings, "retry", garbage))[0] == 1
        assert (await taskstore(settings, "retry", "no-such-job"))[0] == 1
        assert (await client.get(key)).version == 1


async def test_a_retry_replays_writes_applied_before_the_failure(settings: Settings) -> None:
    key = make_key(unique(), "t")
    async with running_worker(settings), TaskStoreClient.connect(settings) as client:
        # A put job applied its write (under op id = job id), then ran out of tries.
        job_id = unique("job")
        assert await client.stores.backend.put(key, b"first", op_id=job_id) == 1
        await client.pool.set(retry_key_prefix + job_id, settings.max_tries)
        assert await enqueue(client.pool, settings.queue_name, job_id, put_job(key, b"again"))
        await until(lambda: _failed_count(client))
        code, retried = await taskstore(settings, "retry", job_id)
        assert code == 0, retried
        assert retried["outcomes"] == {"ok": 1}
        record = await client.get(key)
        assert (record.data, record.version) == (b"first", 1)


async def _failed_count(client: TaskStoreClient) -> bool:
    return bool(await client.pool.zcard(f"{client.settings.queue_name}:failed"))


async def test_only_the_last_failed_jobs_are_kept(settings: Settings) -> None:
    async with running_worker(settings), TaskStoreClient.connect(settings) as client:
        planted = [await plant(client, b"{") for _ in range(5)]
        failed_key = f"{settings.queue_name}:failed"
        await until(lambda: _all_settled(client, planted))
        assert await client.pool.zcard(failed_key) == settings.failed_jobs_keep
        code, listed = await taskstore(settings, "failed", "--limit", "10")
        assert code == 0
        assert {j["job_id"] for j in listed} <= set(planted)
        assert len(listed) == 3
        times = [j["failed_at"] for j in listed]
        assert times == sorted(times, reverse=True)
        redis: Any = client.pool
        for kept in ("records", "kinds"):
            assert await redis.hlen(f"{settings.queue_name}:failed:{kept}") == 3, kept


async def test_failed_jobs_are_found_by_name_and_error_a_page_at_a_time(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"failed_jobs_keep": 100})
    async with running_worker(settings), TaskStoreClient.connect(settings) as client:
        refused = [await plant(client, b"{") for _ in range(3)]
        spent = [
            await plant(client, put_job(make_key(unique(), "t"), b"x"), tries_used=2)
            for _ in range(4)
        ]
        await until(lambda: _all_settled(client, refused + spent))
        queue = settings.queue_name
        redis: Any = client.pool
        # One kept before failures had kinds: its record answers for it.
        await redis.hdel(f"{queue}:failed:kinds", spent[0])

        async def found(**filters: Any) -> tuple[list[str], int]:
            jobs, total = await find_failed(redis, queue, **filters)
            return [j.job_id for j in jobs], total

        newest_first, total = await found(limit=100)
        assert total == 7
        assert set(newest_first) == set(refused + spent)

        def only(ids: list[str]) -> list[str]:
            return [i for i in newest_first if i in ids]

        assert await found(function="refuse") == (only(refused), 3)
        assert await found(function="put", error="JobExecutionFailed") == (only(spent), 4)
        assert await found(error="JobExecutionFailed", offset=1, limit=2) == (only(spent)[1:3], 4)
        assert await found(function="put", error="Refused") == ([], 0)
        assert await found(function="nothing") == ([], 0)
        await discard(redis, queue, refused[0])
        assert await found(function="refuse") == (only(refused[1:]), 2)
        assert not await redis.hexists(f"{queue}:failed:kinds", refused[0])
        with pytest.raises(FailedJobNotKept):
            await discard(redis, queue, refused[0])


async def test_each_minute_times_the_jobs_it_counts_but_not_the_cron_runs(
    settings: Settings,
) -> None:
    """Write jobs are timed from the queue taking them to their answer; a cron run, enqueued
    ahead of its tick to wait for it, is counted and not timed."""
    settings = settings.model_copy(update={"sweep_interval_s": 1})
    async with running_worker(settings), TaskStoreClient.connect(settings) as client:
        owner = unique()
        for i in range(5):
            assert await client.put(make_key(owner, f"k{i}"), b"x", coalesce=False) == 1

        async def cron_ran() -> bool:
            stats = await queue_stats.observe(client.pool, settings.queue_name)
            return stats.last_hour["completed"] >= 5 + 2  # a tick runs two cron jobs

        await until(cron_ran, 10)
        minutes = (await queue_stats.observe(client.pool, settings.queue_name)).minutes
    timed = sum(n for m in minutes for n in m.latency.values())
    assert timed == 5
    assert all(name.startswith("lat:") for m in minutes for name in m.latency)


async def _all_settled(client: TaskStoreClient, job_ids: list[str]) -> bool:
    found = await client.pool.exists(*(f"arq:result:{j}" for j in job_ids))
    return bool(found == len(job_ids))


async def test_stats_count_the_queue_workers_and_the_last_hour(
    settings: Settings, tmp_path: Path
) -> None:
    # A store that is away makes each try fail: one retry, then an answered failure.
    store = RedisProcess(free_ports(1)[0], tmp_path / "store")
    settings = settings.model_copy(update={"store_url": SecretStr(store.url)})
    store.start()
    try:
        async with running_worker(settings), TaskStoreClient.connect(settings) as client:
            owner = unique()
            store.stop()
            with pytest.raises(BackendError):
                await client.put(make_key(owner, "lost"), b"x")
            store.start()
            for i in range(3):
                await client.create_task(owner, "tools/call", ttl_ms=60_000 * (i + 1))
            await client.pool.zadd(settings.queue_name, {"later": 2**50})  # deferred, not ready
            await plant(client, b"nope")
            await until(lambda: _failed_count(client))
            code, stats = await taskstore(settings, "stats")
            assert code == 0, stats
            worker_id = settings.worker_id_file.read_text().strip()  # type: ignore[union-attr]
            assert [w["id"] for w in stats["workers"]] == [worker_id]
            assert stats["workers"][0]["running"] == 0
            assert stats["tasks"] == 3
            assert stats["owners"] == 1
            assert stats["owners_due_for_expiry"] == 0
            assert stats["queued"] >= 1  # "later"; a cron run may be queued too
            assert stats["scheduled"] >= 1  # "later"
            assert stats["ready"] == stats["queued"] - stats["scheduled"]
            assert stats["workers"][0]["batches"] == 0
            assert stats["in_progress"] == 0
            assert stats["oldest_queued_age_s"] == 0
            # The answered failure and the 3 creates completed; the refused job failed.
            assert stats["last_hour"]["completed"] >= 4
            assert stats["last_hour"]["failed"] == 1
            assert stats["last_hour"]["retried"] == settings.max_tries - 1
            assert stats["failed_jobs_kept"] == 1
    finally:
        store.stop()


async def test_stats_see_a_job_waiting_and_watch_repeats(settings: Settings) -> None:
    redis = raw_redis(settings)
    try:
        # No worker: a ready job waits, and its age grows.
        now_s, _ = await redis.time()
        await redis.zadd(settings.queue_name, {"waiting": (int(now_s) - 30) * 1000})
        code, stats = await taskstore(settings, "stats")
        assert code == 0, stats
        assert stats["queued"] == 1
        assert stats["oldest_queued_age_s"] >= 30
        assert stats["workers"] == []
        # A worker holds it: no longer waiting.
        await redis.set("arq:in-progress:waiting", b"1", px=60_000)
        code, stats = await taskstore(settings, "stats")
        assert stats["oldest_queued_age_s"] == 0
        watch = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.tools.cli", "stats", "--watch", "0.1",
            env=settings_env(settings),
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=dies_with_parent(),
        )  # fmt: skip
        try:
            assert watch.stdout is not None
            lines = [json.loads(await watch.stdout.readline()) for _ in range(2)]
            # SIGTERM, not SIGINT, which a suite started in the background hands down
            # ignored; read on to the end, so a full pipe cannot hold the watch up.
            watch.send_signal(signal.SIGTERM)
            await asyncio.wait_for(watch.communicate(), 30)
        finally:
            await reaped(watch)
        assert watch.returncode == 0
        assert all(line["queue"] == settings.queue_name for line in lines)
    finally:
        await redis.delete("arq:in-progress:waiting")
        await redis.aclose()


async def test_health_judges_the_worker_of_its_id_file(settings: Settings, tmp_path: Path) -> None:
    process = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        await wait_for_worker(settings)
        id_file = settings.worker_id_file
        assert id_file is not None
        worker_id = id_file.read_text().strip()
        code, report = await taskstore(settings, "health")
        assert code == 0, report
        assert report["worker_id"] == worker_id
        assert report["alive"] is True
        assert report["running"] == 0
        code, report = await taskstore(settings, "health", "--worker-id", "another-pod")
        assert (code, report) == (1, {"worker_id": "another-pod", "alive": False})
        assert process.stop(signal.SIGTERM) == 0
        code, report = await taskstore(settings, "health")
        assert (code, report) == (1, {"worker_id": worker_id, "alive": False})
    finally:
        process.stop()


async def test_health_exit_codes_for_no_worker_and_bad_settings(settings: Settings) -> None:
    anywhere = settings.model_copy(update={"worker_id_file": None})
    assert await taskstore(anywhere, "health") == (1, {"workers_alive": 0})
    bad = {**settings_env(settings), "TASKSTORE_MAX_JOBS": "none"}
    run = await asyncio.to_thread(python, "-m", "worker.tools.cli", "health", env=bad)
    assert run.returncode == 2
    assert "TASKSTORE_MAX_JOBS" in run.stderr


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    return text


async def test_metrics_serve_the_gauges_and_the_address_is_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings.model_copy(update={"metrics_port": 0})
    with caplog.at_level(logging.INFO, logger="taskstore.worker"):
        async with running_worker(settings) as worker, TaskStoreClient.connect(settings) as client:
            port = state(worker.ctx).metrics_server.server_address[1]
            assert f"metrics on http://127.0.0.1:{port}/metrics" in caplog.text
            await client.put(make_key(unique(), "t"), b"x")
            await client.pool.zadd(settings.queue_name, {"later": 2**50})

            async def gauges_show_the_queue() -> bool:
                text = await asyncio.to_thread(scrape, port)
                return "taskstore_queue_depth 1.0" in text and "taskstore_worker_up 1.0" in text

            await until(gauges_show_the_queue)
            text = await asyncio.to_thread(scrape, port)
            for line in (
                'taskstore_jobs_total{job="put",outcome="ok"} 1.0',
                "taskstore_jobs_in_progress 0.0",
                "taskstore_queue_in_progress 0.0",
                "taskstore_oldest_queued_age_seconds 0.0",
                "taskstore_workers_alive 1.0",
                'taskstore_job_duration_seconds_count{job="ops"} 1.0',
            ):
                assert line in text.splitlines(), line
