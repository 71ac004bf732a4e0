"""Workers for the tests: in-process ones, and real `taskstore worker` processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from arq.worker import Worker, create_worker
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from store.redis import EmbeddedRedis
from store.redis.connect import SentinelURL, is_sentinel
from tests.harness import unique, until
from tests.leftovers import drop_run_keys
from tests.processes import dies_with_parent
from worker.producer.client import TaskStoreClient
from worker.protocol.keys import QueueKeys
from worker.protocol.settings import Settings, load_settings
from worker.runtime.context import STATE
from worker.runtime.liveness import live_workers
from worker.runtime.main import worker_settings

QUEUES = ["redis", "embedded"]


@pytest.fixture(params=QUEUES)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for one test: its own queue and key prefix, on the shared or embedded Redis."""
    return queue_settings(request, tmp_path, request.param)


def queue_settings(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> Settings:
    """Queue and store on the shared Redis, the embedded one, or the store on the cluster."""
    options: dict[str, Any] = {"embedded_dir": tmp_path}
    url = "embedded" if kind == "embedded" else request.getfixturevalue("redis_url")
    if kind == "embedded":
        options["embedded_dir"] = request.getfixturevalue("embedded_dir")
    elif kind == "cluster-store":
        options["store_url"] = request.getfixturevalue("cluster").url
    return isolated_settings(
        url, keep_result_s=30, reply_timeout_s=20, max_tasks_per_owner=1000, **options
    )


@pytest.fixture
def short(redis_url: str) -> Settings:
    """A queue of its own whose writes give up after 1.5 s, for tests of deadlines."""
    return isolated_settings(redis_url, "short", reply_timeout_s=1.5)


def isolated_settings(url: str, label: str = "w", **overrides: Any) -> Settings:
    """Settings with a queue and key prefix no other test uses."""
    run = unique(label)
    return load_settings(
        redis_url=url, queue_name=f"{run}:queue", key_prefix=f"{run}-ts", **overrides
    )


def raw_redis(settings: Settings) -> Redis:
    """A plain client on the queue's Redis (its primary, for Sentinel), for planting and
    inspecting keys."""
    url = settings.queue_url
    tls: dict[str, Any] = settings.tls_options(url)
    if is_sentinel(url):
        return SentinelURL.parse(url).client(Redis, **tls)
    client: Redis = Redis.from_url(
        EmbeddedRedis(settings.embedded_dir).url if url == "embedded" else url, **tls
    )
    return client


async def queued_ids(redis: Redis, settings: Settings) -> list[str]:
    """The jobs a queue holds, write jobs and arq's, from enqueue until they finish."""
    keys = QueueKeys(settings.queue_name)
    found = [*await redis.zrange(keys.writes, 0, -1), *await redis.zrange(keys.queue, 0, -1)]
    return [job_id.decode() for job_id in found]


async def drop_test_keys(settings: Settings) -> None:
    """Remove every key the test's queue and store made (``tests.leftovers``)."""
    redis = raw_redis(settings)
    try:
        await drop_run_keys(redis, settings.queue_name, settings.key_prefix)
    finally:
        await redis.aclose()


@asynccontextmanager
async def running_worker(settings: Settings, **overrides: Any) -> AsyncIterator[Worker]:
    """An arq worker on this event loop, once it has started (or stopped trying); stopped,
    its jobs settled, on exit."""
    worker = create_worker(worker_settings(settings), handle_signals=False, **overrides)
    run = asyncio.create_task(worker.async_run())
    try:
        await until(lambda: STATE in worker.ctx or run.done(), 30)
        yield worker
    finally:
        worker.handle_sig(signal.SIGUSR1)
        await asyncio.gather(run, *worker.tasks.values(), return_exceptions=True)
        worker.tasks.clear()
        await worker.close()


@asynccontextmanager
async def served_client(settings: Settings, **overrides: Any) -> AsyncIterator[TaskStoreClient]:
    """A client with an in-process worker (``overrides`` for arq) behind it; keys dropped after."""
    try:
        async with (
            running_worker(settings, **overrides),
            TaskStoreClient.connect(settings) as client,
        ):
            yield client
    finally:
        await drop_test_keys(settings)


def python(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python *args`` in a subprocess, its output captured."""
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def cli(
    settings: Settings, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``taskstore *args`` in a subprocess with these settings, its output captured."""
    return python("-m", "worker.tools.cli", *args, env=settings_env(settings), cwd=cwd)


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Worker]:
    async with running_worker(settings) as w:
        yield w
    await drop_test_keys(settings)


@pytest.fixture
async def client(settings: Settings, worker: Worker) -> AsyncIterator[TaskStoreClient]:
    async with TaskStoreClient.connect(settings) as c:
        yield c


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess the same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKSTORE_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"TASKSTORE_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


class WorkerProcess:
    """``taskstore worker`` (or ``python -m <argv>``) in a subprocess, its output in a file."""

    def __init__(
        self,
        settings: Settings,
        log: Path,
        argv: tuple[str, ...] = ("worker.tools.cli", "worker"),
        env: dict[str, str] | None = None,
    ) -> None:
        """``env``: more of the process's environment (a clock of its own, say)."""
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", *argv],
            env={**settings_env(settings), **(env or {})},
            preexec_fn=dies_with_parent(),
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        if self.alive():
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


async def wait_for_worker(settings: Settings, count: int = 1, timeout_s: float = 20) -> None:
    """Until ``count`` workers have sent a heartbeat."""
    redis = raw_redis(settings)
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            with contextlib.suppress(RedisConnectionError):  # an embedded server not up yet
                if len(await live_workers(redis, settings.queue_name)) >= count:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{count} workers did not start")
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
