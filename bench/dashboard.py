"""Scenario 9: the dashboard with large registries.

One owner with 100,000 tasks, 10,000 kept failed jobs (``FAILED_JOBS_KEEP``
raised) and 50,000 queued jobs (scheduled an hour ahead, so the running worker
leaves them queued). Every page's p95 answer time, read with ``taskstore
dashboard`` serving over HTTP as an operator starts it; then single-write jobs
through the worker with the dashboard open (its overview and charts refreshed
every 2 s, as the page's script does) against the same with no page open.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from redis.asyncio import Redis

from bench.harness import Bench, Result, interleaved, percentile
from bench.stores import fill
from bench.worker_path import OURS_WORKER, process, write_rate
from store import BatchOp, make_key
from store.tasks.record import TaskRecord
from tests.servers import free_ports
from worker.producer.client import TaskStoreClient
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.serialization import serialize
from worker.protocol.settings import load_settings
from worker.runtime import dead_letter
from worker.tools.dashboard.app import REFRESH_MS

P95_MS = 200
OPEN_SLOWDOWN = 0.95
"""Throughput with the page open, at least this share of it with none open."""
FUNCTIONS = ("put", "ops", "run_tool")
ERRORS = ("BackendError", "JobExecutionFailed", "TimeoutError", "DeadlineExceeded")
DAY_MS = 86_400_000


async def run(bench: Bench) -> list[Result]:
    tasks, failed, queued = (
        bench.size(10_000, 100_000),
        bench.size(1_000, 10_000),
        bench.size(5_000, 50_000),
    )
    queue = f"bench-dash-{uuid.uuid4().hex[:6]}"
    env = {
        "TASKSTORE_REDIS_URL": bench.url,
        "TASKSTORE_QUEUE_NAME": queue,
        "TASKSTORE_KEY_PREFIX": "bench",
        "TASKSTORE_LOG_LEVEL": "WARNING",
        "TASKSTORE_FAILED_JOBS_KEEP": str(failed),
        "TASKSTORE_MAX_TASKS_PER_OWNER": str(tasks),
    }
    settings = load_settings(
        redis_url=bench.url, queue_name=queue, key_prefix="bench", failed_jobs_keep=failed
    )
    owner = uuid.uuid4().hex[:8]
    async with (
        process(OURS_WORKER, env, bench.url),
        TaskStoreClient.connect(settings) as client,
    ):
        await _fill_tasks(client, owner, tasks)
        await _fill_failed(bench.url, queue, failed)
        await _fill_queued(bench.url, queue, queued)
        async with _served(env) as web:
            pages = await _page_times(bench, web, owner)
            results = [
                Result(
                    f"9. dashboard page {path}: p95 answer",
                    p95,
                    None,
                    "ms",
                    f"ours <= {P95_MS} ms",
                    p95 <= P95_MS,
                    {"p50_ms": round(p50, 2), "samples": samples},
                )
                for path, (p50, p95, samples) in pages.items()
            ]
            total = bench.size(640, 6400)
            closed = write_rate(client, total, False)

            async def opened() -> float:
                async with _watching(web):
                    return await closed()

            with_page, without = await interleaved(bench.rounds, opened, closed)
    return [
        *results,
        Result(
            "9. single-write jobs with the dashboard open vs closed",
            with_page,
            without,
            "jobs/s",
            f"ratio >= {OPEN_SLOWDOWN}",
            with_page / without >= OPEN_SLOWDOWN,
            {"tasks": tasks, "failed_jobs": failed, "queued_jobs": queued, "jobs": total},
        ),
    ]


async def _fill_tasks(client: TaskStoreClient, owner: str, count: int) -> None:
    backend: Any = client.stores.backend
    now = await backend.now_ms()
    records = [
        TaskRecord.started(f"task-{i:06d}", owner, "tools/call", now + i, DAY_MS)
        for i in range(count)
    ]
    await fill(
        backend,
        [BatchOp(make_key(owner, r.task_id), r.to_bytes(), expires_at_ms=r.expires_at_ms)
         for r in records],
    )  # fmt: skip


async def _fill_failed(url: str, queue: str, count: int) -> None:
    """Failed jobs kept as the worker keeps them, of a few names and error types."""
    redis = Redis.from_url(url)
    now_ms = int(time.time() * 1000)
    try:
        for start in range(0, count, 1000):
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(start, min(start + 1000, count)):
                    error = ERRORS[i % len(ERRORS)]
                    result = {
                        "f": FUNCTIONS[i % len(FUNCTIONS)],
                        "a": [make_key("someone", f"k{i}"), b"x"],
                        "k": {},
                        "t": 5,
                        "et": now_ms - 60_000,
                        "r": {"__error__": {"type": error, "message": f"{error} of job {i}"}},
                    }
                    dead_letter.record(pipe, queue, f"failed-{i:06d}", result, count, now_ms + i)
                await pipe.execute()
    finally:
        await redis.aclose()


async def _fill_queued(url: str, queue: str, count: int) -> None:
    """Jobs in arq's queue, scheduled an hour ahead: queued, and left so by the worker."""
    redis = Redis.from_url(url)
    later_ms = int(time.time() * 1000) + 3_600_000
    try:
        for start in range(0, count, 1000):
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(start, min(start + 1000, count)):
                    job_id = f"later-{i:06d}"
                    job = {"t": 1, "f": "put", "a": [make_key("someone", f"q{i}"), b"x"], "k": {},
                           "et": later_ms}  # fmt: skip
                    pipe.psetex(job_keys(job_id).job, 7_200_000, serialize(job))
                    pipe.zadd(QueueKeys(queue).queue, {job_id: later_ms + i})
                await pipe.execute()
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def _served(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """``taskstore dashboard`` on a free port, and an HTTP client of it."""
    port = free_ports(1)[0]
    served = {**env, "TASKSTORE_DASHBOARD_PORT": str(port)}
    argv = [sys.executable, "-m", "worker.tools.cli", "dashboard"]
    async with (
        process(argv, served, env["TASKSTORE_REDIS_URL"]),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as web,
    ):
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                await web.get("/static/dashboard.css")
                break
            await asyncio.sleep(0.1)
        yield web


async def _page_times(
    bench: Bench, web: httpx.AsyncClient, owner: str
) -> dict[str, tuple[float, float, int]]:
    """Each page's p50 and p95 answer time (ms), read one request at a time."""
    deep = await _cursor_after(web, owner, bench.size(10, 100))
    paths = [
        "/",
        "/fragments/overview",
        "/charts",
        "/fragments/charts",
        "/failed",
        f"/failed?page={bench.size(1_000, 10_000) // 50 - 1}",
        "/failed?function=ops",
        "/failed?function=run_tool&error=TimeoutError&page=1",
        f"/tasks?owner={owner}",
        f"/tasks?owner={owner}&cursor={deep}",
        "/settings",
    ]
    samples = bench.size(20, 200)
    times: dict[str, tuple[float, float, int]] = {}
    for path in paths:
        taken = [await _answer_ms(web, path) for _ in range(samples)]
        times[path] = (percentile(taken, 50), percentile(taken, 95), samples)
    return times


async def _answer_ms(web: httpx.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    answer = await web.get(path)
    taken = (time.perf_counter() - started) * 1000
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return taken


async def _cursor_after(web: httpx.AsyncClient, owner: str, pages: int) -> str:
    """The cursor of an owner's tasks ``pages`` pages in, followed as a user would."""
    cursor = ""
    for _ in range(pages):
        params = {"owner": owner, **({"cursor": cursor} if cursor else {})}
        answer = await web.get("/tasks", params=params)
        found = answer.text.split('id="next" href="', 1)[1].split('"', 1)[0]
        cursor = httpx.URL(found.replace("&amp;", "&")).params["cursor"]
    return cursor


@contextlib.asynccontextmanager
async def _watching(web: httpx.AsyncClient) -> AsyncIterator[None]:
    """The dashboard open on its overview and on its charts, each refreshed as the page's
    script does."""

    async def refresh(path: str) -> None:
        while True:
            await web.get(path)
            await asyncio.sleep(REFRESH_MS / 1000)

    watchers = [
        asyncio.create_task(refresh(p)) for p in ("/fragments/overview", "/fragments/charts")
    ]
    try:
        yield
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
