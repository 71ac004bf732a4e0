"""A job that fails the same way on every try stops after max_tries and is reported."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from store import BackendError, make_key
from tests.harness import unique
from tests.servers import RedisProcess, free_ports
from tests.worker.conftest import drop_test_keys, isolated_settings, running_worker
from worker.producer.client import TaskStoreClient
from worker.runtime.context import state


async def test_a_job_failing_every_try_stops_after_max_tries(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisProcess(free_ports(1)[0], tmp_path / "store")
    store.start()
    settings = isolated_settings(
        redis_url,
        "poison",
        store_url=store.url,
        max_tries=3,
        reply_timeout_s=30,
    )
    try:
        async with running_worker(settings) as worker, TaskStoreClient.connect(settings) as client:
            store.stop()  # from now on every storage call of the job fails
            with (
                caplog.at_level(logging.WARNING, logger="taskstore.jobs"),
                pytest.raises(BackendError),
            ):
                await client.put(make_key(unique(), "t"), b"x")
            metrics = state(worker.ctx).metrics
            assert metrics.value("taskstore_backend_errors_total", job="put") == 3
            assert metrics.value("taskstore_jobs_total", job="put", outcome="BackendError") == 1
            retries = [r for r in caplog.records if "will retry" in r.getMessage()]
            assert len(retries) == 2
            assert worker.main_task is not None
            assert not worker.main_task.done()
    finally:
        store.stop()
        await drop_test_keys(settings)
